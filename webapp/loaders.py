"""Cached loaders shared by every page: one Engine per bundle (``st.cache_resource``), bounded ``st.cache_data`` for
overlays, display images, filter options and duplicate groups, and the fitted 2-D maps.

Widgets are never read in here; every cached function is keyed by the bundle folder (a string from the server's
configuration, never from the URL or a form) plus plain query values.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from retrieval import grounding as G
from retrieval.engine import Engine
from retrieval.filters import LABEL_SEPARATOR
from webapp import display

BUNDLES_ENV = "CXR_EXPLORER_BUNDLES"
WEIGHTS_ENV = "CXR_EXPLORER_WEIGHTS_DIR"
DEVICE_ENV = "CXR_EXPLORER_DEVICE"
MAX_UPLOAD_ENV = "CXR_EXPLORER_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 50
MAX_FILTER_VALUES = 200  # a column with more distinct values is not offered as a multiselect filter
THUMB_SIDE = 256


def bundle_dirs() -> list[str]:
    """Bundle folders the server was started with: ``$CXR_EXPLORER_BUNDLES`` (os.pathsep-joined) + script args."""
    dirs = [d for d in os.environ.get(BUNDLES_ENV, "").split(os.pathsep) if d.strip()]
    dirs += [a for a in sys.argv[1:] if not a.startswith("-")]
    return list(dict.fromkeys(str(Path(d).absolute()) for d in dirs))


def max_upload_bytes() -> int:
    """The upload limit the server was started with (``--server.maxUploadSize``, in MB)."""
    try:
        return int(float(os.environ.get(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB)) * 1024 * 1024)
    except ValueError:
        return DEFAULT_MAX_UPLOAD_MB * 1024 * 1024


@st.cache_resource(max_entries=4, show_spinner="Loading the bundle and its model…")
def engine(bundle_dir: str, weights_dir: str | None = None, device: str = "auto") -> Engine:
    """The shared, read-only Engine of one bundle (errors propagate and are not cached)."""
    return Engine.open(bundle_dir, weights_dir=weights_dir, device=device)


def current_bundle_dir() -> str:
    """The bundle chosen in the sidebar (set by ``webapp/app.py`` before any page runs)."""
    return str(st.session_state["bundle_dir"])


def engine_options() -> tuple[str | None, str]:
    """(weights_dir, device) the server was started with."""
    return os.environ.get(WEIGHTS_ENV) or None, os.environ.get(DEVICE_ENV, "auto")


def current_engine() -> Engine:
    """The Engine of the current bundle."""
    return _engine_of(current_bundle_dir())


def _engine_of(bundle_dir: str) -> Engine:
    return engine(bundle_dir, *engine_options())


@st.cache_data(max_entries=8, show_spinner=False)
def filter_options(bundle_dir: str) -> dict[str, list[str]]:
    """Distinct values of each metadata column (multi-label cells split on ``|``); wide columns are left out."""
    meta = _engine_of(bundle_dir).bundle.metadata
    out: dict[str, list[str]] = {}
    for col in _engine_of(bundle_dir).bundle.metadata_columns:
        values: set[str] = set()
        for cell in meta[col].dropna().astype(str).unique():
            values.update(p.strip() for p in cell.split(LABEL_SEPARATOR) if p.strip())
            if len(values) > MAX_FILTER_VALUES:
                break
        if 0 < len(values) <= MAX_FILTER_VALUES:
            out[col] = sorted(values)
    return out


@st.cache_data(max_entries=32, show_spinner=False)
def grounded_thumbnails(bundle_dir: str, rows: tuple[int, ...], text: str, cmap: str, alpha: float
                        ) -> tuple[list[bytes], float, float]:
    """Retrieve-then-ground: thumbnails of ``rows`` with the phrase's heatmap from STORED patches (no forward).

    One ``grid_heatmaps`` call for all rows; each [h, w] grid is upsampled onto the thumbnail's crop area. The colour
    range is shared (symmetric around 0, the largest |value|) so thumbnails compare. Returns (PNGs, vmin, vmax).
    """
    eng = _engine_of(bundle_dir)
    grids = eng.grid_heatmaps(list(rows), text)
    vmax = float(np.max(np.abs(grids))) if grids.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    pp = eng.bundle.preprocessing
    out = []
    for row, grid in zip(rows, grids, strict=True):
        thumb = eng.thumbnail(row)
        heat = display.grid_to_display(grid, thumb.width, thumb.height, pp.resize, pp.crop)
        out.append(display.png_bytes(display.compose(thumb, heat, -vmax, vmax, cmap, alpha)))
    return out, -vmax, vmax


@st.cache_data(max_entries=64, show_spinner=False)
def display_image(bundle_dir: str, row: int, max_side: int = 640) -> tuple[bytes, bool]:
    """The case's original image scaled to ``max_side`` as PNG; (thumbnail, False) when the original is unreadable."""
    eng = _engine_of(bundle_dir)
    try:
        img = eng.full_image(row)
        ok = True
    except Exception:  # moved or unreadable original: the stored thumbnail still shows the case
        img, ok = eng.thumbnail(row), False
    return display.png_bytes(display.fit(img, max_side)), ok


@st.cache_data(max_entries=16, show_spinner="Finding near-duplicates…")
def duplicate_groups(bundle_dir: str, threshold: float) -> list[list[int]]:
    """Near-duplicate groups (item rows) at cosine >= ``threshold``, largest first."""
    return _engine_of(bundle_dir).duplicates(float(threshold))


@dataclass(frozen=True)
class EmbeddingMap:
    """A fitted 2-D map: ``coords`` [M, 2] of ``rows`` [M] (item rows) and the transform for new vectors."""

    coords: np.ndarray
    rows: np.ndarray
    method: str
    reducer: object

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """[n, D] -> [n, 2] with the same fitted transform."""
        return np.asarray(self.reducer.transform(np.asarray(vectors, dtype=np.float32)))  # type: ignore[attr-defined]


@st.cache_resource(max_entries=8, show_spinner="Computing the 2-D map (once per bundle and method)…")
def embedding_map(bundle_dir: str, target: str, method: str) -> EmbeddingMap:
    """PCA or UMAP of the bundle's image or report vectors, fitted once per (bundle, target, method), in memory.

    Held with ``cache_resource`` because the fitted reducer is an object the pages only read (never copied or
    mutated); the app writes nothing into bundles.
    """
    eng = _engine_of(bundle_dir)
    vectors = np.asarray(eng.bundle.vectors(target), dtype=np.float32)  # type: ignore[arg-type]
    rows = np.asarray(eng.bundle.ids(target), dtype=np.int64)  # type: ignore[arg-type]
    if target == "sentences":
        raise ValueError("maps are drawn for images or reports")
    if method == "UMAP" and len(vectors) >= 4:
        import umap

        reducer: object = umap.UMAP(n_components=2, n_neighbors=min(15, len(vectors) - 1), metric="cosine",
                                    random_state=0, low_memory=True)
    else:
        from sklearn.decomposition import PCA

        method = "PCA"
        reducer = PCA(n_components=2, random_state=0)
    coords = np.asarray(reducer.fit_transform(vectors), dtype=np.float32)  # type: ignore[attr-defined]
    return EmbeddingMap(coords=coords, rows=rows, method=method, reducer=reducer)


def colormaps() -> list[str]:
    """Colour maps the overlay helper knows."""
    return ["RdBu_r", "viridis", "gray", "RdBu", "viridis_r"]


def default_prompts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The reference's pneumonia prompt sets (positive, negative)."""
    return G.POSITIVE_PNEUMONIA_PROMPTS, G.NEGATIVE_PNEUMONIA_PROMPTS


@st.cache_data(max_entries=8, show_spinner=False)
def upload_display(data: bytes, max_side: int = 640) -> bytes:
    """An uploaded image decoded by ``retrieval.imageio`` (no DICOM identifiers read) and scaled, as PNG."""
    from retrieval.imageio import load_image

    return display.png_bytes(display.fit(load_image(data, name="upload").image, max_side))


@st.cache_data(max_entries=128, show_spinner=False)
def grounding_png(bundle_dir: str, source: int | bytes, phrase: str, cmap: str, alpha: float, isolines: bool,
                  vrange: tuple[float, float] | None) -> tuple[bytes, float, float, float]:
    """One phrase's heatmap on a case row (stored patches) or an upload (one cached forward), composed on the
    displayed image. ``vrange`` None fits the range to the map. Returns (PNG, global similarity, vmin, vmax)."""
    eng = _engine_of(bundle_dir)
    if isinstance(source, bytes):
        g = eng.ground_image(source, phrase)
        base_png = upload_display(source)
    else:
        g = eng.ground_case(int(source), phrase)
        base_png = display_image(bundle_dir, int(source))[0]
    base = display.open_png(base_png)
    pp = eng.bundle.preprocessing
    heat = display.grid_to_display(g.grid, base.width, base.height, pp.resize, pp.crop)
    if vrange is None:
        lo, hi = float(np.nanmin(heat)), float(np.nanmax(heat))
        vmin, vmax = (lo, hi) if hi > lo else (lo - 1e-3, hi + 1e-3)
    else:
        vmin, vmax = vrange
    png = display.png_bytes(display.compose(base, heat, vmin, vmax, cmap, alpha, isolines))
    return png, float(g.score), float(vmin), float(vmax)


@st.cache_data(max_entries=32, show_spinner="Grounding each sentence…")
def report_layers(bundle_dir: str, source: int | bytes, report: str) -> list[tuple[str, float, np.ndarray]]:
    """Each report sentence's (text, global similarity, display-size map) on a case row or an upload."""
    eng = _engine_of(bundle_dir)
    base_png = upload_display(source) if isinstance(source, bytes) else display_image(bundle_dir, int(source))[0]
    base = display.open_png(base_png)
    pp = eng.bundle.preprocessing
    out = []
    for sg in eng.grounded_report(source, report):
        heat = display.grid_to_display(sg.grounding.grid, base.width, base.height, pp.resize, pp.crop)
        out.append((sg.text, float(sg.score), heat))
    return out

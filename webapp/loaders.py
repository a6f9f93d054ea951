"""Cached loaders shared by every page: one Engine per bundle (``st.cache_resource``), bounded ``st.cache_data`` for
overlays, display images, filter options and duplicate groups, and the stored 2-D maps.

Widgets are never read in here; every cached function is keyed by the bundle folder (a string from the server's
configuration, never from the URL or a form) plus plain query values.
"""

from __future__ import annotations

import io
from typing import cast

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from cxr_explorer.retrieval.bundle.targets import Target
from cxr_explorer.retrieval.engine.engine import Engine
from cxr_explorer.retrieval.engine.facets import Facet
from cxr_explorer.retrieval.engine.filters import cell_text
from cxr_explorer.retrieval.grounding import maps as grounding
from cxr_explorer.retrieval.grounding.maps import ZeroShotScore
from cxr_explorer.retrieval.maps.projection import StoredMap
from cxr_explorer.webapp import display
from cxr_explorer.webapp.settings import bundle_dirs as bundle_dirs  # the pages read the server's settings through here
from cxr_explorer.webapp.settings import engine_options
from cxr_explorer.webapp.settings import max_upload_bytes as max_upload_bytes

THUMB_SIDE = 256


@st.cache_resource(max_entries=4, show_spinner="Loading the bundle and its model…")
def engine(bundle_dir: str, weights_dir: str | None = None, device: str = "auto") -> Engine:
    """The shared, read-only Engine of one bundle (errors propagate and are not cached). Its objects live as long
    as the server: they are moved out of the garbage collector's sight (``gc.freeze``), so that no collection
    walks the model and the bundle again."""
    import gc

    eng = Engine.open(bundle_dir, weights_dir=weights_dir, device=device)
    gc.freeze()
    return eng


def reload_engine(bundle_dir: str) -> None:
    """Forget every cached Engine and every value derived from one (they are keyed by folder, not by version: the Map's
    points and thumbnails, curation tables, comparisons), so the next call opens the bundle's current version. The old
    Engine's bundle is released when the last session using it lets go (it is not closed here: another session may
    still be reading it). Other bundles' engines are reopened on their next use (one model load)."""
    del bundle_dir  # every cache is cleared: caches keyed by folder would otherwise keep the held version's data
    st.cache_resource.clear()
    st.cache_data.clear()


def current_bundle_dir() -> str:
    """The bundle chosen in the sidebar (set by ``webapp/app.py`` before any page runs)."""
    return str(st.session_state["bundle_dir"])


def current_engine() -> Engine:
    """The Engine of the current bundle."""
    return _engine_of(current_bundle_dir())


def _engine_of(bundle_dir: str) -> Engine:
    return engine(bundle_dir, *engine_options())


@st.cache_data(max_entries=8, show_spinner=False)
def facets(bundle_dir: str) -> list[Facet]:
    """The bundle's facets: categorical columns with value counts (multi-label cells split on the bundle's
    separators), numeric columns as ranges; ids, urls, pixel sizes and free text left out."""
    return _engine_of(bundle_dir).facets()


def where_with_ranges(bundle_dir: str, where: dict[str, list[str]], ranges: dict[str, tuple[float, float]]
                      ) -> dict[str, list[str]]:
    """``where`` plus each numeric range as the column's distinct values inside it (the engine's equality filters);
    a range that holds no value gives an empty list."""
    out = dict(where)
    meta = _engine_of(bundle_dir).cases.metadata
    for col, (lo, hi) in ranges.items():
        nums = pd.to_numeric(meta[col], errors="coerce")
        inside = meta[col][(nums >= lo) & (nums <= hi)]
        out[col] = sorted({t for t in (cell_text(v) for v in inside.unique()) if t})
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def total_matching(bundle_dir: str, target: str, where: dict[str, list[str]]) -> int:
    """How many vectors of ``target`` pass ``where`` (the total behind the shown page)."""
    if any(not v for v in where.values()):
        return 0
    return _engine_of(bundle_dir).count_matching(cast(Target, target), where or None)


@st.cache_data(max_entries=32, show_spinner=False)
def grounded_thumbnails(bundle_dir: str, rows: tuple[int, ...], text: str, cmap: str, alpha: float
                        ) -> tuple[list[bytes], float, float]:
    """Retrieve-then-ground: thumbnails of ``rows`` with the phrase's heatmap from STORED patches (no forward).

    One ``grid_heatmaps`` call for all rows; each [h, w] grid is upsampled onto the thumbnail's crop area. The colour
    range is shared (symmetric around 0, the largest |value|) so thumbnails compare. Returns (PNGs, vmin, vmax).
    """
    eng = _engine_of(bundle_dir)
    grids = eng.grounder.grid_heatmaps(list(rows), text)
    vmax = float(np.max(np.abs(grids))) if grids.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    pp = eng.grounder.preprocessing
    out = []
    for row, grid in zip(rows, grids, strict=True):
        thumb = _thumbnail_image(eng, row)
        heat = display.grid_to_display(grid, thumb.width, thumb.height, pp.resize, pp.crop)
        out.append(display.png_bytes(display.compose(thumb, heat, -vmax, vmax, cmap, alpha)))
    return out, -vmax, vmax


@st.cache_data(max_entries=64, show_spinner=False)
def display_image(bundle_dir: str, row: int, max_side: int = 640) -> tuple[bytes, bool]:
    """The case's original image scaled to ``max_side`` as PNG; (thumbnail, False) when the original is unreadable."""
    eng = _engine_of(bundle_dir)
    try:
        img = eng.cases.full_image(row)
        ok = True
    except Exception:  # moved or unreadable original: the stored thumbnail still shows the case
        img, ok = _thumbnail_image(eng, row), False
    return display.png_bytes(display.fit(img, max_side)), ok


def _thumbnail_image(eng: Engine, row: int) -> Image.Image:
    """The stored thumbnail of case ``row`` decoded (JPEG, longest side <= 256)."""
    img = Image.open(io.BytesIO(eng.cases.thumbnail(row)))
    img.load()
    return img


@st.cache_data(max_entries=64, show_spinner=False)
def sentence_scores(bundle_dir: str, row: int, query: str) -> list[float]:
    """Cosine of the query with each stored sentence of case ``row``, aligned with ``Case.sentences`` (-1 where a
    sentence has no stored vector)."""
    return _engine_of(bundle_dir).sentence_similarities(int(row), query)


@st.cache_data(max_entries=16, show_spinner="Finding near-duplicates…")
def duplicate_groups(bundle_dir: str, threshold: float) -> list[list[int]]:
    """Near-duplicate groups (item rows) at cosine >= ``threshold``, largest first."""
    return _engine_of(bundle_dir).duplicates(float(threshold))


@st.cache_resource(max_entries=16, show_spinner=False)
def embedding_map(bundle_dir: str, target: str, method: str) -> StoredMap | None:
    """The 2-D map of the bundle's image or report vectors stored by the offline job (``projections.npz``), read
    once per (bundle, target, method); None when the bundle has none for this method (the app computes nothing)."""
    return _engine_of(bundle_dir).stored_map(cast(Target, target), method)


@st.cache_data(max_entries=64, show_spinner=False)
def colour_bar(cmap: str, vmin: float, vmax: float) -> bytes:
    """PNG of the colour bar of ``cmap`` over [vmin, vmax] (labelled ends and middle)."""
    return display.png_bytes(display.colour_bar(cmap, vmin, vmax))


def default_prompts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The reference's pneumonia prompt sets (positive, negative)."""
    return grounding.POSITIVE_PNEUMONIA_PROMPTS, grounding.NEGATIVE_PNEUMONIA_PROMPTS


@st.cache_data(max_entries=8, show_spinner=False)
def upload_display(data: bytes, max_side: int = 640) -> bytes:
    """An uploaded image decoded by ``retrieval.inputs.images`` (no DICOM identifiers read) and scaled, as PNG."""
    from cxr_explorer.retrieval.inputs.images import load_image

    return display.png_bytes(display.fit(load_image(data, name="upload").image, max_side))


@st.cache_data(max_entries=128, show_spinner=False)
def grounding_png(bundle_dir: str, source: int | bytes, phrase: str, cmap: str, alpha: float, isolines: bool,
                  vrange: tuple[float, float] | None) -> tuple[bytes, float, float, float]:
    """One phrase's heatmap on a case row (stored patches) or an upload (one cached forward), composed on the
    displayed image. ``vrange`` None fits the range to the map. Returns (PNG, global similarity, vmin, vmax)."""
    eng = _engine_of(bundle_dir)
    if isinstance(source, bytes):
        g = eng.grounder.ground_image(source, phrase)
        base_png = upload_display(source)
    else:
        g = eng.grounder.ground_case(int(source), phrase)
        base_png = display_image(bundle_dir, int(source))[0]
    base = display.open_png(base_png)
    pp = eng.grounder.preprocessing
    heat = display.grid_to_display(g.grid, base.width, base.height, pp.resize, pp.crop)
    vmin, vmax = display.fit_range(heat) if vrange is None else vrange
    png = display.png_bytes(display.compose(base, heat, vmin, vmax, cmap, alpha, isolines))
    return png, float(g.score), float(vmin), float(vmax)


@st.cache_data(max_entries=32, show_spinner="Grounding each sentence…")
def report_layers(bundle_dir: str, source: int | bytes, report: str) -> list[tuple[str, float, np.ndarray]]:
    """Each report sentence's (text, global similarity, display-size map) on a case row or an upload."""
    eng = _engine_of(bundle_dir)
    base_png = upload_display(source) if isinstance(source, bytes) else display_image(bundle_dir, int(source))[0]
    base = display.open_png(base_png)
    pp = eng.grounder.preprocessing
    out = []
    layers = (eng.grounder.grounded_report_image(source, report) if isinstance(source, bytes)
              else eng.grounder.grounded_report_case(int(source), report))
    for sg in layers:
        heat = display.grid_to_display(sg.grounding.grid, base.width, base.height, pp.resize, pp.crop)
        out.append((sg.text, float(sg.score), heat))
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def zero_shot(bundle_dir: str, source: int | bytes, positive: tuple[str, ...], negative: tuple[str, ...]
              ) -> ZeroShotScore:
    """Zero-shot prompt similarities of a case row (stored vector) or an upload (one cached forward)."""
    grounder = _engine_of(bundle_dir).grounder
    if isinstance(source, bytes):
        return grounder.zero_shot_image(source, positive, negative)
    return grounder.zero_shot_case(int(source), positive, negative)

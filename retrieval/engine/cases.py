"""Read access to a bundle's items by row, as the engine, the grounder and the app's pages need it.

A :class:`CaseStore` wraps one open :class:`retrieval.bundle.reader.Bundle`: the item table, items by row (rows
checked), thumbnails, stored image vectors and patch embeddings, original image sizes, and the FAISS-position-to-row
maps. It holds no model, so a grounder or a page can use it without loading one. What the bundle says about itself
(counts, model, columns) is :mod:`retrieval.bundle.facts`; ids are resolved to rows by the bundle
(:meth:`retrieval.bundle.reader.Bundle.row_of`, through :meth:`retrieval.engine.engine.Engine.row_of`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.targets import Target
from cxr_explorer.retrieval.engine.filters import QueryError
from cxr_explorer.retrieval.engine.search import json_value
from cxr_explorer.retrieval.inputs.images import load_image

_HEADER_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # plain raster formats only, as retrieval.inputs.images


@dataclass(frozen=True)
class Case:
    """One bundle item: its image path (absolute, as recorded), report, sentences, metadata and original size."""

    row: int
    id: str
    path: str
    report: str
    sentences: list[str]
    metadata: dict[str, Any]
    width: int
    height: int


class CaseStore:
    """The items of one bundle by row (0..count-1); unknown rows are a QueryError, unknown ids a BundleError."""

    def __init__(self, bundle: Bundle) -> None:
        self._bundle = bundle
        self._sizes: dict[int, tuple[int, int]] = {}
        self._pos_rows: dict[str, np.ndarray] = {}
        self._pos_ids: dict[str, np.ndarray] = {}
        self._row_vectors: np.ndarray | None = None

    # ----- the whole table -----------------------------------------------------------------------------------------

    @property
    def metadata(self) -> pd.DataFrame:
        """The item table [N], one row per item in row order (id, report, sentences, user columns, ...): the
        bundle's, for the pages (which reach the bundle only through the engine)."""
        return self._bundle.metadata

    @property
    def ids(self) -> list[str]:
        """Item ids as text, in row order."""
        return self.metadata["id"].astype(str).tolist()

    # ----- one item ------------------------------------------------------------------------------------------------

    def check_row(self, row: int) -> int:
        """``row`` as an int, or a QueryError when it is outside the bundle."""
        count = self._bundle.count
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= int(row) < count:
            raise QueryError(f"row {row!r} is outside the bundle (0..{count - 1})")
        return int(row)

    def metadata_of(self, row: int) -> dict[str, Any]:
        """The user metadata columns of item ``row`` as JSON-friendly values."""
        meta = self.metadata.iloc[self.check_row(row)]
        return {str(c): json_value(meta[c]) for c in self._bundle.metadata_columns}

    def case(self, row: int) -> Case:
        """One item by row."""
        row = self.check_row(row)
        meta = self.metadata.iloc[row]
        sentences = meta.get("sentences")
        sentences = [] if sentences is None or isinstance(sentences, float) else [str(s) for s in sentences]
        width, height = self.original_size(row)
        return Case(row=row, id=str(meta["id"]), path=str(self.image_path(row)), report=str(meta.get("report") or ""),
                    sentences=sentences, metadata=self.metadata_of(row), width=width, height=height)

    def image_path(self, row: int) -> Path:
        """The absolute image path recorded at build time."""
        return self._bundle.image_path(self.check_row(row))

    def thumbnail(self, row: int) -> bytes:
        """The stored thumbnail of item ``row``: JPEG bytes, longest side <= 256 (PIL decodes it where pixels are
        needed)."""
        return self._bundle.thumbnail(self.check_row(row))

    def full_image(self, row: int) -> Image.Image:
        """The original image of item ``row``, decoded (grayscale "L") from the path recorded in the bundle."""
        return load_image(self.image_path(row)).image

    def original_size(self, row: int) -> tuple[int, int]:
        """(width, height) of the original image: metadata columns, else the recorded file's header."""
        row = self.check_row(row)
        if row not in self._sizes:
            self._sizes[row] = recorded_size(self.metadata, row) or file_size(self.image_path(row))
        return self._sizes[row]

    # ----- stored embeddings ---------------------------------------------------------------------------------------

    def row_vectors(self) -> np.ndarray:
        """Image vectors [N, D] indexed by item row (a view when FAISS positions already are rows)."""
        if self._row_vectors is None:
            vecs, ids = self._bundle.vectors("images"), self._bundle.ids("images")
            if np.array_equal(ids, np.arange(len(ids))):
                self._row_vectors = vecs
            else:
                out = np.zeros((self._bundle.count, vecs.shape[1]), dtype=np.float32)
                out[ids] = vecs
                self._row_vectors = out
        return self._row_vectors

    def image_vector(self, row: int) -> np.ndarray:
        """Stored global image embedding [D] float32 of item ``row``."""
        return np.array(self.row_vectors()[self.check_row(row)], dtype=np.float32)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(h, w) of the stored patch grid (of each row :meth:`stored_patches` returns)."""
        return self._bundle.grid_shape

    def stored_patches(self, rows: Sequence[int]) -> np.ndarray:
        """Stored patch embeddings of ``rows`` as float32 [n, h, w, D]."""
        idx = [self.check_row(r) for r in rows]
        return np.asarray(self._bundle.patches()[idx], dtype=np.float32)

    def check_similarities(self, rows: Sequence[int], sim: np.ndarray) -> None:
        """Refuse cosine similarities ``sim`` ([n, h, w], one map per row of ``rows``) of stored patches beyond
        [-1, 1] by more than rounding (``maps.COSINE_BOUND``): DamagedBundleError naming the row, nothing drawn."""
        from cxr_explorer.retrieval.grounding.maps import COSINE_BOUND

        peaks = np.abs(np.asarray(sim, dtype=np.float64)).reshape(len(rows), -1).max(axis=1, initial=0.0)
        bad = np.flatnonzero(~(peaks <= COSINE_BOUND))
        if bad.size:
            i = int(bad[0])
            raise self._bundle.refuse_patches(int(rows[i]), f"its patch similarities reach {peaks[i]:.4g}, outside "
                                                           "[-1, 1]: the stored patches are damaged")

    def position_ids(self, target: Target) -> np.ndarray:
        """FAISS position -> item row (images, reports) or sentence id (sentences), [M] int64 (cached)."""
        if target not in self._pos_ids:
            self._pos_ids[target] = np.asarray(self._bundle.ids(target), dtype=np.int64)
        return self._pos_ids[target]

    def position_rows(self, target: Target) -> np.ndarray:
        """Item row [M] of each FAISS position of ``target`` (cached)."""
        if target not in self._pos_rows:
            ids = self.position_ids(target)
            if target == "sentences":
                ids = self._bundle.sentences["row"].to_numpy(dtype=np.int64)[ids]
            self._pos_rows[target] = ids
        return self._pos_rows[target]

    def sentence_text(self, sentence_id: int) -> str:
        """The text of one stored sentence (an id from ``position_ids("sentences")``)."""
        return str(self._bundle.sentences["text"].iloc[int(sentence_id)])


def recorded_size(metadata: pd.DataFrame, row: int) -> tuple[int, int] | None:
    """(width, height) from the metadata columns when both are present and positive."""
    if "width" not in metadata.columns or "height" not in metadata.columns:
        return None
    w, h = metadata["width"].iloc[row], metadata["height"].iloc[row]
    try:
        w_i, h_i = int(float(w)), int(float(h))
    except (TypeError, ValueError, OverflowError):
        return None
    return (w_i, h_i) if w_i > 0 and h_i > 0 else None


def file_size(path: os.PathLike[str] | str) -> tuple[int, int]:
    """Image size from the file header (PIL opens lazily); DICOM and odd files are decoded fully instead."""
    try:
        with Image.open(path, formats=_HEADER_FORMATS) as img:
            return int(img.width), int(img.height)
    except Exception:  # not PIL-readable (DICOM, ...): decode with the project loader, which raises cleanly
        loaded = load_image(path)
        return loaded.width, loaded.height

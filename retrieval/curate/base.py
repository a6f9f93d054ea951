"""What every curation check shares: the input data, the result table and the chunked kNN searches.

Vectors are L2-normalised float32 and FAISS indexes use inner product, so every score is a cosine similarity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
import pandas as pd

from cxr_explorer.retrieval.bundle.reader import Bundle

CHUNK = 8192
"""Queries per FAISS call: bounds the memory of one search to CHUNK x k scores."""
BASE_COLUMNS = ("rank", "id", "row", "severity", "flagged", "evidence")
"""Columns every check table starts with; ``severity`` is higher for worse cases, ``rank`` 1 is the worst."""


@dataclass(frozen=True)
class CurateData:
    """The vectors and metadata one bundle contributes to the checks (image FAISS positions are item rows).

    ``image_vectors`` [N, D], ``report_vectors`` [R, D] with ``report_rows`` [R] (item row of each report vector);
    ``image_index`` / ``report_index`` search them by inner product. ``thumbnail(row)`` returns JPEG bytes;
    ``image_hashes`` [N, B] uint8 the thumbnails' perceptual hashes (None for a bundle that has none).
    """

    name: str
    ids: np.ndarray
    metadata: pd.DataFrame
    image_vectors: np.ndarray
    image_index: faiss.Index
    report_vectors: np.ndarray
    report_rows: np.ndarray
    report_index: faiss.Index | None
    thumbnail: Callable[[int], bytes] | None = None
    image_hashes: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(len(self.ids))


def data_from_bundle(bundle: Bundle) -> CurateData:
    """A bundle's image and report vectors, indexes, ids, metadata and thumbnails (memory-mapped where stored so)."""
    meta = bundle.metadata
    rows = bundle.ids("reports")
    return CurateData(name=bundle.root.name, ids=meta["id"].astype(str).to_numpy(), metadata=meta,
                      image_vectors=bundle.vectors("images"), image_index=bundle.index("images"),
                      report_vectors=bundle.vectors("reports"), report_rows=rows,
                      report_index=bundle.index("reports") if len(rows) else None, thumbnail=bundle.thumbnail,
                      image_hashes=bundle.image_hashes())


@dataclass
class CheckResult:
    """One check's outcome: ``table`` sorted worst first (see BASE_COLUMNS), the thresholds that set ``flagged``,
    and a few summary figures (counts)."""

    name: str
    title: str
    table: pd.DataFrame
    thresholds: dict[str, float | int | str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> int:
        return int(self.table["flagged"].sum()) if len(self.table) else 0


def finish_table(frame: pd.DataFrame, by: list[str], ascending: list[bool]) -> pd.DataFrame:
    """Sort worst first by ``by`` (stable, ties by row), number ``rank`` from 1 and put BASE_COLUMNS first."""
    if frame.empty:
        return pd.DataFrame(columns=[*BASE_COLUMNS, *[c for c in frame.columns if c not in BASE_COLUMNS]])
    out = frame.sort_values([*by, "row"], ascending=[*ascending, True], kind="mergesort").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1, dtype=np.int64))
    rest = [c for c in out.columns if c not in BASE_COLUMNS]
    return out[[*BASE_COLUMNS, *rest]]


def evidence_json(value: Any) -> str:
    """Evidence as compact JSON text (kept as text so CSV and parquet hold the same thing)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def knn(index: faiss.Index, queries: np.ndarray, k: int, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``index`` for each of ``queries`` [n, D], searched ``chunk`` rows at a time.

    Returns (scores [n, k] float32, positions [n, k] int64; -1 where the index has fewer than k vectors).
    """
    n = int(len(queries))
    k = max(1, min(int(k), int(index.ntotal)))
    scores = np.empty((n, k), dtype=np.float32)
    labels = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        q = np.ascontiguousarray(queries[start:start + chunk], dtype=np.float32)
        scores[start:start + len(q)], labels[start:start + len(q)] = index.search(q, k)
    return scores, labels


def self_knn(index: faiss.Index, vectors: np.ndarray, k: int, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest OTHER items of every item (its own position removed; exact copies stay neighbours).

    :param vectors: [N, D] in FAISS position order. Returns (scores [N, k'], positions [N, k']), k' = min(k, N-1).
    """
    n = int(len(vectors))
    k = max(1, min(int(k), n - 1))
    scores, labels = knn(index, vectors, k + 1, chunk)
    own = labels == np.arange(n, dtype=np.int64)[:, None]
    missing = ~own.any(axis=1)
    own[missing, -1] = True  # own vector not returned (ties / approximate index): drop the last instead
    first = np.argmax(own, axis=1)
    keep = np.ones_like(own)
    keep[np.arange(n), first] = False
    return scores[keep].reshape(n, k), labels[keep].reshape(n, k)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD) of [N] values; 0 where the spread is zero."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    med = float(np.median(x))
    mad = 1.4826 * float(np.median(np.abs(x - med)))
    return np.zeros_like(x) if mad <= 1e-12 else (x - med) / mad

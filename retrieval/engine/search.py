"""Nearest-neighbour helpers of the query engine: filtered candidate retrieval, duplicate hiding and grouping.

Kept free of model code: everything here works on L2-normalised float32 vectors, FAISS indexes and boolean masks.
Scores are inner products of unit vectors, i.e. cosine similarities.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from math import ceil
from typing import Any

import faiss
import numpy as np
import pandas as pd

from cxr_explorer.retrieval.engine.filters import QueryError
from cxr_explorer.retrieval.engine.limits import MAX_K

BRUTE_FORCE_MAX = 50_000
"""Filtered searches over at most this many allowed vectors are scored exactly with one matmul."""
MAX_FETCH = 8192
"""Largest over-fetch asked of a FAISS index before falling back to an exact scan of the allowed vectors."""


def json_value(value: Any) -> Any:
    """A JSON-friendly scalar: numpy scalars to Python, NaN / NA to None, arrays to lists."""
    if isinstance(value, np.ndarray):
        return [json_value(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def check_k(k: int) -> int:
    """Validate the number of results: an int in 1..1000."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
        raise QueryError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return int(k)


def check_threshold(threshold: float | None, target: str) -> None:
    """A duplicate threshold must be a cosine in (0, 1] and only applies to item targets."""
    if threshold is None:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) <= 1.0:
        raise QueryError(f"duplicate threshold must be a cosine similarity in (0, 1], got {threshold!r}")
    if target == "sentences":
        raise QueryError("hiding duplicates applies to the images and reports targets, not sentences")


@dataclass(frozen=True)
class Candidates:
    """Best-first candidates of one query: ``scores`` [M] float32, ``positions`` [M] int64 (FAISS positions).

    ``exhausted`` is True when no further candidate exists beyond these (asking for more would return nothing new).
    """

    scores: np.ndarray
    positions: np.ndarray
    exhausted: bool


def index_search(index: faiss.Index, query: np.ndarray, n: int, lock: threading.Lock) -> Candidates:
    """Top ``n`` of an index for one ``[D]`` query (under ``lock``); invalid (-1) labels are dropped."""
    total = int(index.ntotal)
    n = min(n, total)
    if n <= 0:
        return Candidates(np.empty(0, np.float32), np.empty(0, np.int64), True)
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    with lock:
        scores, labels = index.search(q, n)
    valid = labels[0] >= 0
    exhausted = n >= total or not bool(valid.all())
    return Candidates(scores[0][valid].astype(np.float32), labels[0][valid].astype(np.int64), exhausted)


def exact_search(vectors: np.ndarray, allowed: np.ndarray, query: np.ndarray, n: int,
                 chunk: int = 65_536) -> Candidates:
    """Exact top ``n`` among the ``allowed`` positions ([M] bool mask over ``vectors`` [M, D]), scored chunk-wise
    so a memory-mapped matrix is never copied whole."""
    positions = np.flatnonzero(allowed).astype(np.int64)
    if positions.size == 0:
        return Candidates(np.empty(0, np.float32), positions, True)
    q = query.reshape(-1).astype(np.float32)
    scores = np.concatenate([np.asarray(vectors[positions[i:i + chunk]], dtype=np.float32) @ q
                             for i in range(0, positions.size, chunk)])
    order = np.lexsort((positions, -scores))[:n]  # best first, ties by position
    return Candidates(scores[order], positions[order], n >= positions.size)


def filtered_search(index: faiss.Index, vectors: Callable[[], np.ndarray], allowed: np.ndarray | None,
                    query: np.ndarray, n: int, lock: threading.Lock) -> Candidates:
    """Top ``n`` candidates whose position is ``allowed`` ([M] bool, None = all).

    Small selections are scored exactly; large ones over-fetch from the index (``n`` times the inverse pass rate,
    doubled, growing fourfold) and fall back to an exact scan when ``MAX_FETCH`` is not enough.
    """
    if allowed is None:
        return index_search(index, query, n, lock)
    n_allowed = int(allowed.sum())
    if n_allowed == 0:
        return Candidates(np.empty(0, np.float32), np.empty(0, np.int64), True)
    total = int(index.ntotal)
    if n_allowed <= BRUTE_FORCE_MAX:
        return exact_search(vectors(), allowed, query, n)
    fetch = min(total, n * ceil(total / n_allowed) * 2)
    while True:
        found = index_search(index, query, fetch, lock)
        keep = allowed[found.positions]
        if int(keep.sum()) >= n or found.exhausted:
            exhausted = found.exhausted and int(keep.sum()) <= n
            return Candidates(found.scores[keep][:n], found.positions[keep][:n], exhausted)
        if fetch >= MAX_FETCH:
            return exact_search(vectors(), allowed, query, n)
        fetch = min(total, fetch * 4, MAX_FETCH)


def drop_near_duplicates(rows: np.ndarray, row_vectors: np.ndarray, threshold: float,
                         seed_rows: tuple[int, ...] = ()) -> np.ndarray:
    """Indices into best-first ``rows`` [M] to keep: a row is dropped when its image vector has cosine >= threshold
    with an already kept, better-ranked row (or with one of ``seed_rows``, e.g. the query case itself).
    ``row_vectors`` is [N, D] indexed by row.
    """
    kept: list[int] = []
    kept_vecs: list[np.ndarray] = [np.asarray(row_vectors[int(r)], dtype=np.float32) for r in seed_rows]
    for i, row in enumerate(rows):
        v = np.asarray(row_vectors[int(row)], dtype=np.float32)
        if kept_vecs and float(np.max(np.stack(kept_vecs) @ v)) >= threshold:
            continue
        kept.append(i)
        kept_vecs.append(v)
    return np.asarray(kept, dtype=np.int64)


def _find(parent: np.ndarray, i: int) -> int:
    """Union-find root with path halving."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = int(parent[i])
    return i


def connected_groups(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components (size >= 2) of ``pairs`` over ``n`` nodes: each sorted, largest group first."""
    parent = np.arange(n, dtype=np.int64)
    for a, b in pairs:
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for a, b in pairs:
        for node in (a, b):
            groups.setdefault(_find(parent, node), []).append(node)
    out = [sorted(set(g)) for g in groups.values()]
    return sorted((g for g in out if len(g) >= 2), key=lambda g: (-len(g), g[0]))


def near_duplicate_pairs(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray, threshold: float, neighbours: int,
                         max_pairs: int, lock: threading.Lock, chunk: int = 4096) -> list[tuple[int, int]]:
    """Pairs of item rows (a < b) whose image vectors have cosine >= ``threshold``, found by a kNN self-search.

    :param vectors: [M, D] image vectors in FAISS position order; ``ids`` [M] maps positions to rows.
    Stops after ``max_pairs`` pairs; with an approximate index some pairs may be missed.
    """
    total = int(index.ntotal)
    k = min(total, neighbours + 1)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, total, chunk):
        q = np.ascontiguousarray(vectors[start:start + chunk], dtype=np.float32)
        with lock:
            scores, labels = index.search(q, k)
        for qi, (s_row, l_row) in enumerate(zip(scores, labels, strict=True)):
            a = int(ids[start + qi])
            for s, lab in zip(s_row, l_row, strict=True):
                if lab < 0 or s < threshold:
                    continue
                b = int(ids[lab])
                if a != b:
                    pairs.add((min(a, b), max(a, b)))
            if len(pairs) >= max_pairs:
                return sorted(pairs)[:max_pairs]
    return sorted(pairs)

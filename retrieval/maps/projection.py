"""2-D map coordinates of a bundle's image and report embeddings, computed once by the offline job and stored.

``projections.npz`` holds, for each target ``t`` in (images, reports) with vectors: ``{t}_pca`` [M, 2] float32, the
PCA ``{t}_pca_mean`` [D] and ``{t}_pca_components`` [2, D] (to place a new vector), and ``{t}_umap`` [M, 2] when the
target has at least :data:`MIN_UMAP` vectors and umap-learn is installed. Rows follow the target's FAISS positions
(``Bundle.ids(target)``). A query lands on the UMAP map at the similarity-weighted mean of its nearest neighbours.

Memory and time are bounded past :data:`FIT_LIMIT` vectors: the vector files are memory-mapped, PCA accumulates its
mean and D x D scatter over row blocks, and UMAP is fitted on a seeded sample of at most :data:`FIT_LIMIT` vectors,
the others placed by the fitted reducer's ``transform`` block by block. UMAP's neighbours (for the fit and for
``transform``) come from an exact FAISS search (:class:`ExactNeighbours`), not from pynndescent, whose numba compile
cost 20 s in every build process at 4,096 vectors and more (umap-learn switches to it there). umap-learn's own numba
functions, which it compiles afresh in every process (~4 s), keep their machine code in numba's disk cache
(:func:`retrieval.maps.umap_jit.import_umap`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from cxr_explorer.retrieval.bundle.store import names
from cxr_explorer.retrieval.bundle.store.atomic import writing
from cxr_explorer.retrieval.bundle.targets import Target
from cxr_explorer.retrieval.maps.umap_jit import import_umap

log = logging.getLogger(__name__)

PROJECTIONS = names.PROJECTIONS
MIN_UMAP = 100  # fewer vectors: PCA only (UMAP needs neighbours, and its compile is not worth it)
NEIGHBOURS = 8
FIT_LIMIT = 20_000  # UMAP is fitted on at most this many vectors (seeded sample); the rest are transformed
TRANSFORM_BLOCK = 10_000  # rows placed per UMAP transform call (umap-learn runs 100 epochs up to 10,000 rows)
BLOCK = 16_384  # rows per streamed PCA block: [BLOCK, D] float64 = 16 MiB at D = 128


def _blocks(vectors: np.ndarray, block: int) -> Iterator[np.ndarray]:
    """Consecutive row blocks [<= block, D] of ``vectors`` (a memory map stays one: each block is read on demand)."""
    for start in range(0, len(vectors), block):
        yield vectors[start:start + block]


def _signed(comps: np.ndarray) -> np.ndarray:
    """[2, D] components with the deterministic sign rule: each row's largest |loading| is positive."""
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return comps * np.where(signs == 0, 1, signs)[:, None]


def pca(vectors: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[M, D] -> (coords [M, 2], mean [D], components [2, D]) from streamed blocks: the mean and the D x D scatter
    matrix are accumulated in float64 over ``block`` rows at a time (about a shift row, so no cancellation), the
    components are its top two eigenvectors with the deterministic sign rule (largest |loading| > 0). Peak working
    memory is one [block, D] float64 block and [D, D], never an [M, D] copy; equal to an SVD of the centred data."""
    m, d = vectors.shape
    if m == 0:
        return np.zeros((0, 2), np.float32), np.zeros(d, np.float32), np.eye(2, d, dtype=np.float32)
    shift = np.asarray(vectors[0], dtype=np.float64)
    total, scatter = np.zeros(d), np.zeros((d, d))
    for rows in _blocks(vectors, block):
        x = np.asarray(rows, dtype=np.float64) - shift
        total += x.sum(axis=0)
        scatter += x.T @ x
    offset = total / m
    mean = shift + offset
    if m < 2:
        comps = np.eye(2, d)
    else:
        centred_scatter = scatter - m * np.outer(offset, offset)
        _, vecs = np.linalg.eigh((centred_scatter + centred_scatter.T) / 2)
        comps = np.zeros((2, d))
        top = vecs[:, ::-1][:, : min(2, d, m - 1)].T  # descending eigenvalues, as an SVD orders them
        comps[: len(top)] = top
        comps = _signed(comps)
    comps32, mean32 = comps.astype(np.float32), mean.astype(np.float32)
    coords = np.empty((m, 2), np.float32)
    for start in range(0, m, block):
        x = np.asarray(vectors[start:start + block], dtype=np.float64) - mean
        coords[start:start + len(x)] = x @ comps.T
    return coords, mean32, comps32


def fit_sample(m: int, fit_limit: int) -> np.ndarray:
    """Sorted row positions [min(m, fit_limit)] the map is fitted on: all rows, or a seeded (seed 0) sample."""
    if m <= fit_limit:
        return np.arange(m)
    return np.sort(np.random.default_rng(0).choice(m, size=fit_limit, replace=False))


class ExactNeighbours:
    """Exact cosine k-nearest neighbours among fixed vectors (FAISS inner product on L2-normalised copies), in the
    form umap-learn 0.5 takes as ``precomputed_knn``: its ``transform`` calls ``query`` and reads ``_angular_trees``
    (only to pick an epsilon for its approximate search; the search here is exact, so it is ignored)."""

    _angular_trees = True

    def __init__(self, vectors: np.ndarray) -> None:
        """``vectors`` [N, D]: the rows neighbours are drawn from (the UMAP fit's rows, in that order)."""
        base = np.array(vectors, dtype=np.float32, order="C")
        faiss.normalize_L2(base)
        self._index = faiss.IndexFlatIP(base.shape[1])
        self._index.add(base)

    def query(self, queries: np.ndarray, k: int, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """[Q, D] -> ([Q, k] int32 row positions, [Q, k] float32 cosine distances 1 - cos >= 0), nearest first."""
        q = np.array(queries, dtype=np.float32, order="C")
        faiss.normalize_L2(q)
        sims, rows = self._index.search(q, k)
        return rows.astype(np.int32), np.maximum(1.0 - sims, 0.0).astype(np.float32)


def _pass_on(caught: list[warnings.WarningMessage]) -> None:
    """Re-issue the warnings of a UMAP fit, umap-learn's six-line "Spectral initialisation failed" (duplicate or
    near-duplicate vectors leave too small an eigengap) as one log line."""
    spectral = False
    for w in caught:
        if str(w.message).startswith("Spectral initialisation failed"):
            spectral = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if spectral:
        log.warning("UMAP map: spectral initialisation failed (many duplicate or near-duplicate vectors), so the "
                    "layout starts from a seeded random one")


def umap_coords(vectors: np.ndarray, fit_limit: int = FIT_LIMIT, block: int = TRANSFORM_BLOCK
                ) -> tuple[np.ndarray, int] | None:
    """[M, D] -> ([M, 2] UMAP coordinates (cosine, seeded), vectors the fit used), or None when umap-learn is
    missing or M < MIN_UMAP. The reducer is fitted on at most ``fit_limit`` rows (:func:`fit_sample`); every other
    row is placed by the fitted reducer's ``transform`` in blocks of ``block`` rows, so time and memory past
    ``fit_limit`` grow by the block, not by M."""
    m = len(vectors)
    if m < MIN_UMAP:
        return None
    umap = import_umap()
    if umap is None:  # optional dependency: the map offers PCA only
        log.warning("umap-learn is not installed: the bundle stores PCA map coordinates only")
        return None
    sample = fit_sample(m, max(fit_limit, MIN_UMAP))
    fit = np.asarray(vectors[sample], dtype=np.float32)
    k = min(15, len(sample) - 1)
    neighbours = ExactNeighbours(fit)
    reducer = umap.UMAP(n_components=2, n_neighbors=k, metric="cosine", random_state=0, low_memory=True,
                        precomputed_knn=(*neighbours.query(fit, k), neighbours))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # umap-learn says transform is unavailable without an NNDescent index: it is
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)  # seeded: one thread
        fitted = reducer.fit_transform(fit)
    _pass_on(caught)
    coords = np.empty((m, 2), np.float32)
    coords[sample] = fitted
    rest = np.ones(m, bool)
    rest[sample] = False
    others = np.flatnonzero(rest)
    for start in range(0, len(others), block):
        rows = others[start:start + block]
        coords[rows] = reducer.transform(np.asarray(vectors[rows], dtype=np.float32))
    return coords, len(sample)


def write_projections(folder: Path, fit_limit: int = FIT_LIMIT) -> dict[str, Any]:
    """Compute and write ``projections.npz`` in a (staged) bundle folder; returns the manifest entry. The vector
    files are memory-mapped and read in blocks; ``fit_vectors`` records, per target, how many vectors the UMAP fit
    used (the rest were placed by its transform)."""
    arrays: dict[str, np.ndarray] = {}
    entry: dict[str, Any] = {"file": PROJECTIONS, "methods": {}, "fit_vectors": {}}
    for target, name in (("images", names.IMAGE_EMB), ("reports", names.REPORT_EMB)):
        path = folder / name
        if not path.exists():
            continue
        vectors = np.load(path, mmap_mode="r")
        if len(vectors) == 0:
            continue
        arrays[f"{target}_pca"], arrays[f"{target}_pca_mean"], arrays[f"{target}_pca_components"] = pca(vectors)
        methods = ["PCA"]
        fitted = umap_coords(vectors, fit_limit)
        if fitted is not None:
            arrays[f"{target}_umap"], entry["fit_vectors"][target] = fitted
            methods.append("UMAP")
        entry["methods"][target] = methods
        del vectors
    with writing(folder / PROJECTIONS) as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    return entry


@dataclass(frozen=True)
class StoredMap:
    """Stored coordinates [M, 2] of a target's vectors (FAISS positions) for one method."""

    target: Target
    method: str
    coords: np.ndarray
    vectors: np.ndarray
    mean: np.ndarray | None = None
    components: np.ndarray | None = None

    def place(self, query: np.ndarray) -> np.ndarray:
        """Where a new L2-normalised vector [D] lands: PCA transform, or (UMAP) the similarity-weighted mean of its
        :data:`NEIGHBOURS` nearest stored vectors' coordinates. Returns [2]."""
        q = np.asarray(query, dtype=np.float32)
        if self.mean is not None and self.components is not None:
            return np.asarray((q - self.mean) @ self.components.T, dtype=np.float32)
        sims = self.vectors @ q
        top = np.argsort(-sims)[:NEIGHBOURS]
        w = np.maximum(sims[top], 1e-6)
        return np.asarray((self.coords[top] * w[:, None]).sum(axis=0) / w.sum(), dtype=np.float32)


def load_map(root: Path, target: Target, method: str, vectors: np.ndarray) -> StoredMap | None:
    """The stored map of ``target`` by ``method`` in a bundle folder, or None when the bundle has none."""
    path = Path(root) / PROJECTIONS
    if not path.exists():
        return None
    with np.load(path) as z:
        key = f"{target}_{method.lower()}"
        if key not in z.files:
            return None
        if method == "PCA":
            return StoredMap(target, method, z[key], vectors, z[f"{key}_mean"], z[f"{key}_components"])
        return StoredMap(target, method, z[key], vectors)

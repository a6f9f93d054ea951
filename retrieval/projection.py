"""2-D map coordinates of a bundle's image and report embeddings, computed once by the offline job and stored.

``projections.npz`` holds, for each target ``t`` in (images, reports) with vectors: ``{t}_pca`` [M, 2] float32, the
PCA ``{t}_pca_mean`` [D] and ``{t}_pca_components`` [2, D] (to place a new vector), and ``{t}_umap`` [M, 2] when the
target has at least :data:`MIN_UMAP` vectors and umap-learn is installed. Rows follow the target's FAISS positions
(``Bundle.ids(target)``). A query lands on the UMAP map at the similarity-weighted mean of its nearest neighbours.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxr_explorer.retrieval.store import names
from cxr_explorer.retrieval.targets import Target

log = logging.getLogger(__name__)

PROJECTIONS = names.PROJECTIONS
METHODS = ("PCA", "UMAP")
MIN_UMAP = 100  # fewer vectors: PCA only (UMAP needs neighbours, and its compile is not worth it)
NEIGHBOURS = 8


def pca(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[M, D] -> (coords [M, 2], mean [D], components [2, D]) by SVD (deterministic sign: largest |loading| > 0)."""
    x = np.asarray(vectors, dtype=np.float64)
    mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
    centred = x - mean
    if len(x) < 2:
        comps = np.eye(2, x.shape[1])
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        comps = np.zeros((2, x.shape[1]))
        comps[: min(2, len(vt))] = vt[:2]
        signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(axis=1)])
        comps *= np.where(signs == 0, 1, signs)[:, None]
    return (centred @ comps.T).astype(np.float32), mean.astype(np.float32), comps.astype(np.float32)


def umap_coords(vectors: np.ndarray) -> np.ndarray | None:
    """[M, D] -> [M, 2] UMAP (cosine, seeded), or None when umap-learn is missing or M < MIN_UMAP."""
    if len(vectors) < MIN_UMAP:
        return None
    try:
        import umap
    except ImportError:  # optional dependency: the map offers PCA only
        log.warning("umap-learn is not installed: the bundle stores PCA map coordinates only")
        return None
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(vectors) - 1), metric="cosine", random_state=0,
                        low_memory=True)
    return np.asarray(reducer.fit_transform(np.asarray(vectors, dtype=np.float32)), dtype=np.float32)


def write_projections(folder: Path) -> dict[str, Any]:
    """Compute and write ``projections.npz`` in a (staged) bundle folder; returns the manifest entry."""
    arrays: dict[str, np.ndarray] = {}
    entry: dict[str, Any] = {"file": PROJECTIONS, "methods": {}}
    for target, name in (("images", names.IMAGE_EMB), ("reports", names.REPORT_EMB)):
        path = folder / name
        if not path.exists():
            continue
        vectors = np.load(path)
        if len(vectors) == 0:
            continue
        arrays[f"{target}_pca"], arrays[f"{target}_pca_mean"], arrays[f"{target}_pca_components"] = pca(vectors)
        methods = ["PCA"]
        coords = umap_coords(vectors)
        if coords is not None:
            arrays[f"{target}_umap"] = coords
            methods.append("UMAP")
        entry["methods"][target] = methods
    np.savez(folder / PROJECTIONS, **arrays)  # type: ignore[arg-type]
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

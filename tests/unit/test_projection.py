"""Map coordinates stored by the job: PCA (with the transform for new vectors) always, UMAP from MIN_UMAP vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.retrieval import projection
from cxr_explorer.retrieval.bundle import Bundle
from tests.webapp import synthetic_bundle


def unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_pca_places_stored_and_new_vectors_alike() -> None:
    x = unit(50, 16)
    coords, mean, comps = projection.pca(x)
    assert coords.shape == (50, 2) and comps.shape == (2, 16)
    stored = projection.StoredMap("images", "PCA", coords, x, mean, comps)
    assert np.allclose(stored.place(x[7]), coords[7], atol=1e-5)
    assert coords[:, 0].var() >= coords[:, 1].var()


def test_neighbour_placement_lands_on_a_duplicate() -> None:
    x = unit(30, 8)
    coords = np.random.default_rng(1).normal(size=(30, 2)).astype(np.float32)
    stored = projection.StoredMap("images", "UMAP", coords, x)
    q = x[3]
    placed = stored.place(q)
    assert placed.shape == (2,)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    assert np.all(placed >= lo) and np.all(placed <= hi)


def test_bundle_stores_projections_in_manifest_and_checksums(tmp_path: Path) -> None:
    bundle = synthetic_bundle.build(tmp_path)
    opened = Bundle.open(bundle)
    manifest = opened.manifest
    assert manifest["projections"]["methods"] == {"images": ["PCA"], "reports": ["PCA"]}  # 8 items: no UMAP
    assert projection.PROJECTIONS in manifest["files"]
    assert manifest["label_separators"] == {"labels": "|"}
    vectors = np.asarray(opened.vectors("images"))
    stored = projection.load_map(opened.folder, "images", "PCA", vectors)
    assert stored is not None and stored.coords.shape == (8, 2)
    assert projection.load_map(opened.folder, "images", "UMAP", vectors) is None


@pytest.mark.slow
def test_umap_is_stored_from_min_umap_vectors(tmp_path: Path) -> None:
    pytest.importorskip("umap")
    coords = projection.umap_coords(unit(projection.MIN_UMAP, 16))
    assert coords is not None and coords.shape == (projection.MIN_UMAP, 2) and np.isfinite(coords).all()

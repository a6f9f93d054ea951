"""Map coordinates stored by the job: PCA (with the transform for new vectors) always, UMAP from MIN_UMAP vectors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.maps import projection
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.paths import REPO
from tests.helpers.synthetic import tiny_model


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
    bundle = model_bundle(tmp_path, tiny_model(), APP_CASES)
    opened = Bundle.open(bundle)
    manifest = opened.manifest
    assert manifest["projections"]["methods"] == {"images": ["PCA"], "reports": ["PCA"]}  # 8 items: no UMAP
    assert manifest["projections"]["fit_vectors"] == {}  # no UMAP fit, so no fit size
    assert projection.PROJECTIONS in manifest["files"]
    assert manifest["label_separators"] == {"labels": "|"}
    vectors = np.asarray(opened.vectors("images"))
    stored = projection.load_map(opened.folder, "images", "PCA", vectors)
    assert stored is not None and stored.coords.shape == (8, 2)
    assert projection.load_map(opened.folder, "images", "UMAP", vectors) is None


@pytest.mark.slow
def test_umap_is_stored_from_min_umap_vectors(tmp_path: Path) -> None:
    pytest.importorskip("umap")
    fitted = projection.umap_coords(unit(projection.MIN_UMAP, 16))
    assert fitted is not None
    coords, used = fitted
    assert coords.shape == (projection.MIN_UMAP, 2) and np.isfinite(coords).all() and used == projection.MIN_UMAP


def test_umap_numba_functions_keep_their_machine_code_on_disk() -> None:
    """umap-learn compiles most of its numba functions afresh in every process (~4 s of a build's map step)
    unless their disk cache is turned on; the map step turns it on before its first fit."""
    pytest.importorskip("umap")
    from numba.core.registry import CPUDispatcher

    assert projection.umap_coords(unit(projection.MIN_UMAP, 16)) is not None
    import umap.layouts
    import umap.umap_

    compiled = [f for m in (umap.umap_, umap.layouts) for f in vars(m).values()
                if isinstance(f, CPUDispatcher) and f.signatures]  # the ones this process has used
    assert len(compiled) >= 3 and all(f.stats.cache_path for f in compiled)
    assert sum(sum(f.stats.cache_hits.values()) + sum(f.stats.cache_misses.values()) for f in compiled) > 0


NO_CACHE_FOLDER = """
import numpy as np
from numba.core import caching, config
caching.CacheImpl._locator_classes = [caching.UserProvidedCacheLocator]  # read-only install, no writable home
from cxr_explorer.retrieval.maps import projection
coords, used = projection.umap_coords(np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32))
print(config.CACHE_DIR, coords.shape)
"""


@pytest.mark.slow  # a fresh process compiles umap-learn with numba
def test_map_step_runs_where_numba_has_no_writable_cache_folder(tmp_path: Path) -> None:
    """The container's app user can write neither the virtualenv nor a home folder: ``import umap`` raised there
    (its own ``cache=True`` functions), which stopped the build at its map step. A private temporary folder is used
    instead, and removed when the process ends."""
    pytest.importorskip("umap")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", NO_CACHE_FOLDER], env=env, capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    folder, shape = run.stdout.split()[-3], " ".join(run.stdout.split()[-2:])
    assert Path(folder).parent == tmp_path and Path(folder).name.startswith("cxr-explorer-numba-")
    assert shape == "(120, 2)" and not Path(folder).exists()


def test_exact_neighbours_are_the_brute_force_cosine_neighbours() -> None:
    x = unit(300, 16) * np.random.default_rng(2).uniform(0.5, 3.0, size=(300, 1)).astype(np.float32)  # not unit
    rows, dist = projection.ExactNeighbours(x).query(x[:40], 5)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = xn[:40] @ xn.T
    assert rows.dtype == np.int32 and dist.dtype == np.float32 and rows.shape == dist.shape == (40, 5)
    assert np.array_equal(rows[:, 0], np.arange(40)) and np.abs(dist[:, 0]).max() < 1e-5  # each row is its nearest
    assert np.array_equal(rows, np.argsort(-cos, axis=1)[:, :5])
    assert np.allclose(dist, 1.0 - np.take_along_axis(cos, rows.astype(np.int64), axis=1), atol=1e-5)


@pytest.mark.slow
def test_umap_keeps_separate_clusters_apart() -> None:
    """Two tight clusters far apart in the embedding space stay apart on the map (neighbours drive the layout)."""
    pytest.importorskip("umap")
    a, b = np.zeros(16, np.float32), np.zeros(16, np.float32)
    a[0], b[1] = 1.0, 1.0
    noise = np.random.default_rng(3).normal(scale=0.05, size=(200, 16)).astype(np.float32)
    x = np.vstack([a + noise[:100], b + noise[100:]])
    fitted = projection.umap_coords(x)
    assert fitted is not None
    coords = fitted[0]
    ca, cb = coords[:100], coords[100:]
    gap = np.linalg.norm(ca.mean(axis=0) - cb.mean(axis=0))
    assert gap > 3 * max(ca.std(axis=0).max(), cb.std(axis=0).max())


def svd_pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference: PCA by a full SVD of the centred [M, D] float64 copy, same sign rule (largest |loading| > 0)."""
    x64 = np.asarray(x, np.float64)
    mean = x64.mean(axis=0)
    _, _, vt = np.linalg.svd(x64 - mean, full_matrices=False)
    comps = vt[:2] * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])[:, None]
    return (x64 - mean) @ comps.T, mean, comps


@pytest.mark.parametrize(("n", "block"), [(1000, 64), (1000, 1000), (97, 10)])
def test_streamed_pca_equals_svd_pca(n: int, block: int) -> None:
    scales = np.linspace(3.0, 0.2, 32)  # distinct variances: the top two directions are well defined
    x = (np.random.default_rng(n).normal(size=(n, 32)) * scales + 5.0).astype(np.float32)
    coords, mean, comps = projection.pca(x, block=block)
    ref_coords, ref_mean, ref_comps = svd_pca(x)
    assert np.abs(mean - ref_mean).max() < 1e-5
    assert np.abs(comps - ref_comps).max() < 1e-5
    assert np.abs(coords - ref_coords).max() < 1e-5


def test_streamed_pca_reads_a_memory_map_in_blocks(tmp_path: Path) -> None:
    x = unit(500, 16, seed=3)
    np.save(tmp_path / "v.npy", x)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    coords, mean, comps = projection.pca(mapped, block=37)
    ref_coords, ref_mean, ref_comps = svd_pca(x)
    assert np.abs(comps - ref_comps).max() < 1e-5 and np.abs(coords - ref_coords).max() < 1e-5


def test_pca_of_one_and_no_vectors() -> None:
    coords, mean, comps = projection.pca(unit(1, 8))
    assert coords.shape == (1, 2) and np.allclose(coords, 0) and np.allclose(comps, np.eye(2, 8))
    coords, mean, comps = projection.pca(np.zeros((0, 8), np.float32))
    assert coords.shape == (0, 2) and mean.shape == (8,) and comps.shape == (2, 8)


def test_fit_sample_is_seeded_bounded_and_sorted() -> None:
    assert np.array_equal(projection.fit_sample(50, 100), np.arange(50))
    first, again = projection.fit_sample(1000, 120), projection.fit_sample(1000, 120)
    assert len(first) == 120 and len(np.unique(first)) == 120 and np.array_equal(first, again)
    assert np.all(np.diff(first) > 0) and first.max() < 1000


@pytest.mark.slow
def test_umap_fitted_on_a_sample_places_every_row_deterministically() -> None:
    pytest.importorskip("umap")
    x = unit(700, 16, seed=5)
    first = projection.umap_coords(x, fit_limit=200, block=150)
    assert first is not None
    coords, used = first
    assert used == 200 and coords.shape == (700, 2) and np.isfinite(coords).all()
    assert len(np.unique(coords, axis=0)) == 700  # the transformed rows got coordinates of their own, not a fill
    again = projection.umap_coords(x, fit_limit=200, block=150)
    assert again is not None and np.array_equal(again[0], coords)
    # transformed rows land on the fitted map: inside the sample's bounding box, widened by its size
    sample = projection.fit_sample(700, 200)
    lo, hi = coords[sample].min(axis=0), coords[sample].max(axis=0)
    rest = np.setdiff1d(np.arange(700), sample)
    assert np.all(coords[rest] >= lo - (hi - lo)) and np.all(coords[rest] <= hi + (hi - lo))


@pytest.mark.slow
def test_written_projections_record_the_fit_size(tmp_path: Path) -> None:
    pytest.importorskip("umap")
    from cxr_explorer.retrieval.bundle.store import names

    np.save(tmp_path / names.IMAGE_EMB, unit(300, 16, seed=7))
    np.save(tmp_path / names.REPORT_EMB, unit(60, 16, seed=8))
    entry = projection.write_projections(tmp_path, fit_limit=120)
    assert entry["methods"] == {"images": ["PCA", "UMAP"], "reports": ["PCA"]}
    assert entry["fit_vectors"] == {"images": 120}
    with np.load(tmp_path / projection.PROJECTIONS) as z:
        assert z["images_umap"].shape == (300, 2) and np.isfinite(z["images_umap"]).all()
        assert z["reports_pca"].shape == (60, 2)


def test_a_failed_spectral_initialisation_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """umap-learn's multi-line warning (raised on corpora of duplicate images) becomes one log line."""
    import warnings

    import umap

    real = umap.UMAP.fit_transform

    def fit_transform(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        warnings.warn("Spectral initialisation failed! The eigenvector solver\nfailed. This is likely due to too "
                      "small an eigengap. Consider\nadding some noise or jitter to your data.\n\nFalling back to "
                      "random initialisation!", stacklevel=2)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(umap.UMAP, "fit_transform", fit_transform)
    vectors = np.random.default_rng(0).normal(size=(projection.MIN_UMAP, 8)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert projection.umap_coords(vectors) is not None
    assert [str(w.message) for w in caught if "Spectral" in str(w.message)] == []
    lines = [r.getMessage() for r in caplog.records if "spectral" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]

"""Writing a bundle version: FAISS indexes, derived files, the manifest, and the staged install
(:mod:`retrieval.bundle.store`).

:func:`write_version` streams parts (chunks, an earlier version, shard bundles) into a fresh staging folder of the
bundle's build area, runs the derived-file steps on the staged data files (:data:`DERIVED`, then the caller's own,
e.g. a build's temporal stage), writes the manifest last, and installs the folder as a new immutable version. The
caller holds the folder's :class:`retrieval.bundle.store.WriterLock`.

Every file of a version beyond the data files of its parts is made by a :data:`Step`: a function of the staging folder
(and the manifest so far) that writes its files there and returns a :class:`Derived` (its manifest entries and the
files to checksum). Adding such a file is its name in :mod:`retrieval.bundle.store.names`, a step registered in
:data:`DERIVED` (or passed to :func:`write_version` by the job that owns it) with the reader that reads it, and a test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.bundle.reader import FORMAT_NAME, FORMAT_VERSION, BundleError
from cxr_explorer.retrieval.bundle.store import integrity, names
from cxr_explorer.retrieval.bundle.store.parts import Part
from cxr_explorer.retrieval.bundle.store.patch_store import STORES

__all__ = ["DERIVED", "FLAT_MAX", "Derived", "Step", "build_index", "training_sample", "write_bundle",
           "write_version"]

FLAT_MAX = 200_000
ADD_BLOCK = 65_536  # vectors added to a FAISS index per call (32 MiB at D = 128)


@dataclass(frozen=True)
class Derived:
    """What a derived-file step added to a staged version: its manifest entries (top-level keys) and the files it
    wrote, relative to the staging folder (checksummed into the manifest's ``files``)."""

    entries: dict[str, Any]
    files: list[str] = field(default_factory=list)


Step = Callable[[Path, dict[str, Any]], Derived]
"""A derived-file step: (staging folder holding the version's data files, manifest so far) -> :class:`Derived`.
Runs after the data files and indexes are staged, before the manifest is written."""


def _metadata_columns(metadata: Path) -> list[str]:
    """The metadata columns of a metadata.parquet beyond the base ones, from its schema (no rows are read)."""
    return [c for c in pq.read_schema(metadata).names
            if c not in store.BASE_COLUMNS and not c.startswith("__index_level_")]


def label_separators(staging: Path, manifest: dict[str, Any]) -> Derived:
    """``label_separators``: the build's ``label_sep`` for the metadata columns whose cells contain it, else ``;`` /
    ``|`` detected (:func:`retrieval.engine.facets.detect_separators`). No file."""
    from cxr_explorer.retrieval.engine.facets import detect_separators

    path = staging / names.METADATA
    columns = pd.read_parquet(path, columns=_metadata_columns(path))  # not the big base columns
    given = manifest.get("build", {}).get("label_sep") or None
    return Derived({"label_separators": detect_separators(columns, given)})


def projections(staging: Path, manifest: dict[str, Any]) -> Derived:
    """``projections``: the 2-D map coordinates of the image and report vectors (``projections.npz``,
    :func:`retrieval.maps.projection.write_projections`)."""
    from cxr_explorer.retrieval.maps.projection import write_projections

    entry = write_projections(staging)
    return Derived({"projections": entry}, [names.PROJECTIONS])


def image_hashes(staging: Path, manifest: dict[str, Any]) -> Derived:
    """``image_hashes``: the perceptual hash of every item's thumbnail (``image_hashes.npy`` [N, HASH_BYTES] uint8,
    :mod:`retrieval.inputs.image_hash`), the model-free signal of the near-duplicate and leakage checks."""
    from cxr_explorer.retrieval.bundle.store.parts import ThumbStore
    from cxr_explorer.retrieval.inputs.image_hash import HASH_BYTES, SIDE, hashes_of_jpegs

    thumbs = ThumbStore(staging / names.THUMBS, np.load(staging / names.THUMBS_INDEX))
    np.save(staging / names.IMAGE_HASHES, hashes_of_jpegs(thumbs))
    return Derived({"image_hashes": {"kind": "phash", "bits": HASH_BYTES * 8, "dct_block": SIDE,
                                     "source": "thumbnail"}}, [names.IMAGE_HASHES])


DERIVED: dict[str, Step] = {"label_separators": label_separators, "projections": projections,
                            "image_hashes": image_hashes}
"""The derived-file steps of every version (a build, an ``--append``, a ``merge``), run in this order."""


def build_index(vectors: np.ndarray, index_type: str = "auto", use_gpu: bool | None = None
                ) -> tuple[faiss.Index, dict[str, Any]]:
    """Inner-product index over [M, D] float32 vectors -> (CPU index, {type, count, params}). ``vectors`` may be
    memory-mapped: they are added ``ADD_BLOCK`` rows at a time (read unmapped), so only the index holds them."""
    x = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors, np.float32)
    n, d = x.shape
    kind = index_type
    if kind == "auto":
        # Above FLAT_MAX: IVF, not HNSW. On clustered vectors (CXR embeddings cluster tightly) HNSW32/efSearch 128
        # reached recall@10 0.81 at 100k vs IVF (nprobe = nlist/8) 0.9975 (benchmarks/results/latest.md).
        kind = "flat" if n <= FLAT_MAX else "ivf"
    if kind not in ("flat", "hnsw", "ivf"):
        raise BundleError(f"unknown index type {index_type!r}; use auto, flat, hnsw or ivf")
    if kind == "ivf" and n == 0:
        kind = "flat"
    params: dict[str, Any] = {}
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction, hnsw.hnsw.efSearch = 200, 128
        index = hnsw
        params = {"M": 32, "efConstruction": 200, "efSearch": 128}
    else:
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        params = {"nlist": nlist, "nprobe": min(nlist, max(1, nlist // 8, 16))}
    gpu = _gpu_available() if use_gpu is None else use_gpu
    if gpu and kind != "hnsw" and n:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    if kind == "ivf":
        sample = training_sample(x, 256 * params["nlist"])
        index.train(sample)
        del sample  # not held while the index fills
    for start in range(0, n, ADD_BLOCK):
        index.add(np.ascontiguousarray(store.read_rows(x, start, ADD_BLOCK), dtype=np.float32))
    if gpu and kind != "hnsw" and n:
        index = faiss.index_gpu_to_cpu(index)
    return index, {"type": kind, "count": n, "params": params, "built_on": "gpu" if gpu and kind != "hnsw" else "cpu"}


def training_sample(vectors: np.ndarray, size: int) -> np.ndarray:
    """[min(size, M), D] float32 rows of [M, D] ``vectors`` (the seed-0 permutation's first ``size``, in row order),
    read ``ADD_BLOCK`` rows at a time: a memory-mapped file is read, never mapped, and no other copy is made."""
    n, d = vectors.shape
    chosen = np.sort(np.random.default_rng(0).permutation(n)[:size])
    out = np.empty((len(chosen), d), np.float32)
    done = 0
    for start in range(0, n, ADD_BLOCK):
        upto = int(np.searchsorted(chosen, start + ADD_BLOCK))
        if upto > done:
            block = store.read_rows(vectors, start, ADD_BLOCK)
            out[done:upto] = block[chosen[done:upto] - start]
            done = upto
    return out


def _gpu_available() -> bool:
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def stage_parts(staging: Path, parts: Sequence[Part], *, identity: dict[str, Any], spec: dict[str, Any],
                preprocessing: dict[str, Any], grid: tuple[int, int], dim: int, build: dict[str, Any],
                index_type: str, use_gpu: bool | None, build_id: str | None, patch_store: str = "fp16"
                ) -> dict[str, Any]:
    """Write every data file of ``parts`` and the FAISS indexes into ``staging``; returns the manifest so far."""
    if patch_store not in STORES:
        raise BundleError(f"unknown patch store {patch_store!r}; use {' or '.join(STORES)}")
    counts = store.write_parts(staging, parts, grid, dim, patch_store)
    indexes = {}
    for target, emb in (("images", names.IMAGE_EMB), ("reports", names.REPORT_EMB),
                        ("sentences", names.SENTENCE_EMB)):
        index, indexes[target] = build_index(np.load(staging / emb, mmap_mode="r"), index_type, use_gpu)
        faiss.write_index(index, str(staging / names.INDEX_FILES[target]))
        del index  # not held while the next index and the map coordinates are computed
    skipped = store.read_json(staging / names.SKIPPED_JSON)
    store.write_skipped_csv(staging / names.SKIPPED_CSV, skipped)
    meta_cols = _metadata_columns(staging / names.METADATA)  # the schema only: no rows read
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": dt.datetime.now(dt.UTC).isoformat(),
        "build_id": build_id, "model": identity, "spec": spec, "preprocessing": preprocessing, "dim": dim,
        "grid_shape": list(grid), "patch_store": patch_store, "metric": "inner_product", "normalised": True,
        "count": counts["items"], "counts": counts, "indexes": indexes, "metadata_columns": meta_cols,
        "build": build, "skipped": skipped,
        "files": integrity.describe(staging, store.data_files(staging)),
        integrity.INTEGRITY: {"block": integrity.BLOCK},
    }


def derive_files(staging: Path, manifest: dict[str, Any], steps: Mapping[str, Step]) -> None:
    """Run ``steps`` in order on the staged version; each one's entries and file checksums go into ``manifest``."""
    for step in steps.values():
        derived = step(staging, manifest)
        manifest.update(derived.entries)
        manifest["files"].update(integrity.describe(staging, derived.files))


def write_version(root: str | os.PathLike[str], parts: Sequence[Part], *, identity: dict[str, Any],
                  spec: dict[str, Any], preprocessing: dict[str, Any], grid_shape: Sequence[int], dim: int = 128,
                  build: dict[str, Any] | None = None, index_type: str = "auto", use_gpu: bool | None = None,
                  build_id: str | None = None, steps: Mapping[str, Step] | None = None,
                  patch_store: str = "fp16") -> int:
    """Write ``parts`` as the next installed version of the bundle folder ``root``; returns its version number.

    The derived files of :data:`DERIVED` are made, then those of ``steps`` (the caller's own, e.g. a build's temporal
    stage). Space for the whole version is reserved first (DiskSpaceError, one line, nothing changed); a full disk
    during the writes is the same error. The caller holds the writer lock."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    grid = (int(grid_shape[0]), int(grid_shape[1]))
    staging = store.BuildArea(root).new_staging()
    need = sum(store.build_area.part_bytes(p) for p in parts) * 2  # data files + indexes and projections
    store.reserve(root, need)
    with store.disk_errors(root):
        manifest = stage_parts(staging, parts, identity=identity, spec=spec, preprocessing=preprocessing, grid=grid,
                               dim=dim, build=build or {}, index_type=index_type, use_gpu=use_gpu,
                               build_id=build_id, patch_store=patch_store)
        derive_files(staging, manifest, {**DERIVED, **(steps or {})})
        store.write_json(staging / names.MANIFEST, manifest)
        integrity.seal_manifest(staging)
        number = store.install(root, staging)
    store.tidy(root)  # older versions no reader holds; the build area when this install was its build
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # an empty build area (a merge or write_bundle without state)
    return number


def write_bundle(root: str | os.PathLike[str], *, identity: dict[str, Any], spec: dict[str, Any],
                 preprocessing: dict[str, Any], grid_shape: Sequence[int], metadata: pd.DataFrame,
                 sentences: pd.DataFrame, image_emb: np.ndarray, report_emb: np.ndarray, report_rows: np.ndarray,
                 sentence_emb: np.ndarray, patches: np.ndarray, thumbnails: Sequence[bytes],
                 skipped: list[dict[str, str]], build: dict[str, Any], index_type: str = "auto") -> Path:
    """Write a whole bundle from in-memory arrays (tests, small corpora) as the next version of ``root``; shapes as
    in :class:`Part`.

    ``metadata`` needs ``id`` and ``path``; missing ``image_abspath`` is ``path`` made absolute, missing
    ``report`` is "" and missing ``sentences`` is gathered from ``sentences`` (row, text).
    """
    meta = metadata.copy()
    if "image_abspath" not in meta.columns:
        meta["image_abspath"] = [str(Path(p).absolute()) for p in meta["path"]]
    if "sentences" not in meta.columns:
        grouped = sentences.groupby("row")["text"].apply(list).to_dict() if len(sentences) else {}
        meta["sentences"] = [grouped.get(r, []) for r in range(len(meta))]
    if meta["id"].astype(str).duplicated().any():
        raise BundleError("write_bundle: metadata ids are not unique")
    part = Part(metadata=meta, image_emb=image_emb, patches=patches, thumbnails=thumbnails, report_emb=report_emb,
                report_rows=np.asarray(report_rows, np.int64), sentence_emb=sentence_emb, sentences=sentences,
                skipped=[dict(s) for s in skipped])
    with store.WriterLock(Path(root), command="write_bundle"):
        write_version(root, [part], identity=identity, spec=spec, preprocessing=preprocessing,
                      grid_shape=grid_shape, dim=int(np.asarray(image_emb).shape[1]), build=build,
                      index_type=index_type)
    return Path(root)

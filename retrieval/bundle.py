"""The bundle: one folder the index job writes and the engine, app and CLI query (the only owner of its format).

See ``docs/bundle-format.md``. Vectors are L2-normalised; every FAISS index uses inner product. Files are written to
``_staging/``, renamed to ``_ready/`` when complete and then moved in place with ``manifest.json`` last, so a reader
never sees a half-written bundle and a crashed install finishes on the next build run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa

from retrieval import bundle_io as io
from retrieval.bundle_extras import finalise_extras
from retrieval.bundle_io import Part
from retrieval.preprocess import Preprocessing

__all__ = ["FORMAT_VERSION", "TARGETS", "Bundle", "BundleError", "Part", "build_index", "finalise_parts",
           "write_bundle"]

FORMAT_VERSION = 1
FORMAT_NAME = "cxr-explorer-bundle"
TARGETS = ("images", "reports", "sentences")
Target = Literal["images", "reports", "sentences"]
FLAT_MAX = 200_000


class BundleError(Exception):
    """A user-facing bundle problem: missing or damaged bundle, wrong format version, model mismatch."""


QUICK_VERIFY_BYTES = 64 << 20
"""Files up to this size are checked against their SHA-256 on every open (indexes, vectors, tables: a flipped byte
must not rank corrupted vectors silently); larger ones (patches, thumbnails) by ``info --verify``."""
REQUIRED_KEYS = ("model", "count", "grid_shape", "preprocessing", "dim", "indexes", "files")
_READ_ERRORS = (RuntimeError, ValueError, OSError, EOFError, KeyError, pa.ArrowException)


def _rebuild_hint(manifest: dict[str, Any]) -> str:
    cmd = manifest.get("build", {}).get("command")
    return f"rebuild it with: {cmd}" if cmd else "rebuild it with `cxr-explorer build CORPUS --out DIR --model NAME`"


class Bundle:
    """A finished bundle opened read-only; FAISS positions map to item rows through :meth:`ids`."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self._indexes: dict[str, faiss.Index] = {}

    @classmethod
    def open(cls, root: str | os.PathLike[str], expect_model: str | None = None) -> Bundle:
        """Open and check a bundle; ``expect_model`` refuses one built with another model (BundleError)."""
        root = Path(root)
        if (root / io.READY).exists():
            raise BundleError(f"bundle {root} was interrupted while being written; rerun the same "
                              "`cxr-explorer build` (or merge) command to finish it")
        if not (root / io.MANIFEST).is_file():
            if (root / io.CHUNKS).is_dir():
                raise BundleError(f"bundle {root} is unfinished (no manifest.json yet); rerun the same "
                                  "`cxr-explorer build` command to finish it")
            raise BundleError(f"{root} is not a bundle: no manifest.json (build one with `cxr-explorer build`)")
        try:
            manifest = io.read_json(root / io.MANIFEST)
        except ValueError as exc:
            raise BundleError(f"bundle {root} has a damaged manifest.json ({exc}); rebuild it") from None
        bundle = cls(root, manifest)
        bundle._check_format()
        if expect_model is not None and bundle.model_name != expect_model:
            raise BundleError(f"bundle {root} was built with model {bundle.model_name!r}, not {expect_model!r}: "
                              f"query it with --model {bundle.model_name}, or {_rebuild_hint(manifest)} "
                              f"using --model {expect_model}")
        return bundle

    def _check_format(self) -> None:
        m = self.manifest
        if m.get("format") != FORMAT_NAME:
            raise BundleError(f"{self.root}/manifest.json is not a cxr-explorer bundle manifest")
        if m.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"bundle {self.root} has format version {m.get('format_version')}, this cxr-explorer "
                              f"reads version {FORMAT_VERSION}; {_rebuild_hint(m)}")
        missing = [key for key in REQUIRED_KEYS if key not in m]
        if missing:
            raise BundleError(f"damaged bundle {self.root}: manifest.json lacks {', '.join(missing)}; "
                              f"{_rebuild_hint(m)}")
        files = m["files"]
        for name, info in files.items():
            path = self.root / name
            if not path.is_file() or path.stat().st_size != info["bytes"]:
                raise BundleError(f"damaged bundle {self.root}: {name} is missing or has the wrong size; "
                                  f"{_rebuild_hint(m)}")
        small = [n for n, info in files.items() if info["bytes"] <= QUICK_VERIFY_BYTES]
        actual = io.file_checksums(self.root, small)
        bad = [n for n in small if actual[n]["sha256"] != files[n]["sha256"]]
        if bad:
            verb = "differs from its checksum" if len(bad) == 1 else "differ from their checksums"
            raise BundleError(f"damaged bundle {self.root}: {', '.join(bad)} {verb} in the manifest; "
                              f"{_rebuild_hint(m)}")

    @contextlib.contextmanager
    def _reading(self, name: str) -> Iterator[None]:
        """Turn a failure to read a data file (bad header, truncated, flipped bytes) into one BundleError line."""
        try:
            yield
        except _READ_ERRORS as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"damaged bundle {self.root}: {name} cannot be read ({reason}); check it with "
                              f"`cxr-explorer info {self.root} --verify`, or {_rebuild_hint(self.manifest)}"
                              ) from None

    def check_model(self, identity: dict[str, Any]) -> None:
        """Refuse a model whose name, revision or image weights checksum differ from the bundle's."""
        built = self.manifest["model"]
        for key in ("name", "revision", "image_md5"):
            if built.get(key) != identity.get(key):
                raise BundleError(f"bundle {self.root} was built with {key} {built.get(key)!r} but the loaded "
                                  f"model has {identity.get(key)!r}; use the bundle's model or "
                                  f"{_rebuild_hint(self.manifest)}")

    def verify(self) -> list[str]:
        """Recompute every data file's SHA-256; returns the names that differ from the manifest."""
        files = self.manifest.get("files", {})
        actual = io.file_checksums(self.root, list(files))
        return [n for n, info in files.items() if actual[n]["sha256"] != info["sha256"]]

    @property
    def model_name(self) -> str:
        return str(self.manifest["model"]["name"])

    @property
    def grid_shape(self) -> tuple[int, int]:
        h, w = self.manifest["grid_shape"]
        return int(h), int(w)

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.manifest["preprocessing"])

    @property
    def count(self) -> int:
        return int(self.manifest["count"])

    @property
    def skipped(self) -> list[dict[str, str]]:
        """Items the build skipped: dicts with id, path, reason, detail."""
        return list(self.manifest.get("skipped", []))

    @property
    def metadata_columns(self) -> list[str]:
        """User metadata columns (filterable), in corpus order."""
        return list(self.manifest.get("metadata_columns", []))

    @cached_property
    def label_separators(self) -> dict[str, str]:
        """Multi-label column -> separator: the manifest's record, else detected (``;`` or ``|``) on opening."""
        from retrieval.facets import detect_separators

        recorded = self.manifest.get("label_separators")
        return dict(recorded) if isinstance(recorded, dict) else detect_separators(self.metadata)

    @cached_property
    def metadata(self) -> pd.DataFrame:
        """[N] rows: id, path, image_abspath, report, sentences (list[str]) + metadata columns (str)."""
        with self._reading(io.METADATA):
            meta = pd.read_parquet(self.root / io.METADATA)
            meta["sentences"] = [list(v) if v is not None else [] for v in meta["sentences"]]
        return meta

    @cached_property
    def sentences(self) -> pd.DataFrame:
        """[S] rows: row (int64 item row), text (str); sentence id = position."""
        with self._reading(io.SENTENCES):
            return pd.read_parquet(self.root / io.SENTENCES)

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {str(i): r for r, i in enumerate(self.metadata["id"])}

    def row_of(self, item_id: str) -> int:
        """Row of an item id; an unknown id is a BundleError naming it."""
        try:
            return self._row_of[str(item_id)]
        except KeyError:
            raise BundleError(f"no item with id {item_id!r} in bundle {self.root}") from None

    def _check_target(self, target: str) -> None:
        if target not in TARGETS:
            raise BundleError(f"unknown search target {target!r}; use one of {', '.join(TARGETS)}")

    def index(self, target: Target) -> faiss.Index:
        """The FAISS index (inner product over L2-normalised vectors) of ``target``, search parameters applied."""
        self._check_target(target)
        if target not in self._indexes:
            with self._reading(io.INDEX_FILES[target]):
                index = faiss.read_index(str(self.root / io.INDEX_FILES[target]))
            params = self.manifest["indexes"][target].get("params", {})
            if "efSearch" in params:
                faiss.downcast_index(index).hnsw.efSearch = int(params["efSearch"])  # type: ignore[attr-defined]
            if "nprobe" in params:
                faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
            self._indexes[target] = index
        return self._indexes[target]

    def ids(self, target: Target) -> np.ndarray:
        """[M] int64: FAISS position -> item row (images, reports) or sentence id (sentences)."""
        self._check_target(target)
        if target == "reports":
            with self._reading(io.REPORT_ROWS):
                return np.load(self.root / io.REPORT_ROWS)
        return np.arange(self.count if target == "images" else len(self.sentences), dtype=np.int64)

    def vectors(self, target: Target) -> np.ndarray:
        """[M, D] float32 L2-normalised vectors in FAISS position order."""
        self._check_target(target)
        name = {"images": io.IMAGE_EMB, "reports": io.REPORT_EMB, "sentences": io.SENTENCE_EMB}[target]
        with self._reading(name):
            return np.load(self.root / name, mmap_mode="r")

    def patches(self) -> np.ndarray:
        """[N, h, w, D] float16 L2-normalised patch embeddings, memory-mapped."""
        with self._reading(io.PATCHES):
            return np.load(self.root / io.PATCHES, mmap_mode="r")

    @cached_property
    def _thumbs(self) -> io.ThumbStore:
        with self._reading(io.THUMBS_INDEX):
            return io.ThumbStore(self.root / io.THUMBS, np.load(self.root / io.THUMBS_INDEX))

    def thumbnail(self, row: int) -> bytes:
        """JPEG bytes (longest side <= 256) of item ``row``."""
        return self._thumbs[int(row)]

    def image_path(self, row: int) -> Path:
        """Absolute image path recorded at build time."""
        return Path(str(self.metadata["image_abspath"].iloc[int(row)]))

    def as_part(self) -> Part:
        """The bundle's data as a :class:`Part` (memory-mapped), for appending and merging."""
        part = io.read_part(self.root)
        part.skipped = self.skipped
        return part


def build_index(vectors: np.ndarray, index_type: str = "auto", use_gpu: bool | None = None
                ) -> tuple[faiss.Index, dict[str, Any]]:
    """Inner-product index over [M, D] float32 vectors -> (CPU index, {type, count, params})."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
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
        sample = x[np.random.default_rng(0).permutation(n)[: 256 * params["nlist"]]]
        index.train(sample)
    index.add(x)
    if gpu and kind != "hnsw" and n:
        index = faiss.index_gpu_to_cpu(index)
    return index, {"type": kind, "count": n, "params": params, "built_on": "gpu" if gpu and kind != "hnsw" else "cpu"}


def _gpu_available() -> bool:
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def finalise_parts(root: str | os.PathLike[str], parts: Sequence[Part], *, identity: dict[str, Any],
                   spec: dict[str, Any], preprocessing: dict[str, Any], grid_shape: Sequence[int], dim: int = 128,
                   build: dict[str, Any] | None = None, index_type: str = "auto", use_gpu: bool | None = None) -> Path:
    """Write ``parts`` as one finished bundle at ``root`` (staged, then installed atomically with manifest last)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = io.stage_dir(root)
    grid = (int(grid_shape[0]), int(grid_shape[1]))
    counts = io.write_parts(staging, parts, grid, dim)
    indexes = {}
    for target, emb in (("images", io.IMAGE_EMB), ("reports", io.REPORT_EMB), ("sentences", io.SENTENCE_EMB)):
        index, indexes[target] = build_index(np.load(staging / emb), index_type, use_gpu)
        faiss.write_index(index, str(staging / io.INDEX_FILES[target]))
    skipped = io.read_json(staging / io.SKIPPED_JSON)
    io.write_skipped_csv(staging / io.SKIPPED_CSV, skipped)
    meta_cols = [c for c in pd.read_parquet(staging / io.METADATA).columns if c not in io.BASE_COLUMNS]
    extras = finalise_extras(staging, build or {})  # label separators, map coordinates (files checksummed below)
    manifest = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": dt.datetime.now(dt.UTC).isoformat(),
        "model": identity, "spec": spec, "preprocessing": preprocessing, "dim": dim, "grid_shape": list(grid),
        "metric": "inner_product", "normalised": True, "count": counts["items"], "counts": counts,
        "indexes": indexes, "metadata_columns": meta_cols, "build": build or {}, "skipped": skipped,
        "files": io.file_checksums(staging, io.data_files(staging)),
    }
    manifest.update(extras)
    io.write_json(staging / io.MANIFEST, manifest)
    io.publish(root, staging)
    return root


def write_bundle(root: str | os.PathLike[str], *, identity: dict[str, Any], spec: dict[str, Any],
                 preprocessing: dict[str, Any], grid_shape: Sequence[int], metadata: pd.DataFrame,
                 sentences: pd.DataFrame, image_emb: np.ndarray, report_emb: np.ndarray, report_rows: np.ndarray,
                 sentence_emb: np.ndarray, patches: np.ndarray, thumbnails: Sequence[bytes],
                 skipped: list[dict[str, str]], build: dict[str, Any], index_type: str = "auto") -> Path:
    """Write a whole bundle from in-memory arrays (tests, small corpora); shapes as in :class:`Part`.

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
    part = Part(meta, image_emb, patches, thumbnails, report_emb, np.asarray(report_rows, np.int64), sentence_emb,
                sentences, [dict(s) for s in skipped])
    return finalise_parts(root, [part], identity=identity, spec=spec, preprocessing=preprocessing,
                          grid_shape=grid_shape, dim=int(np.asarray(image_emb).shape[1]), build=build,
                          index_type=index_type)

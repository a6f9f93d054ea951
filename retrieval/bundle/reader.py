"""The bundle: one folder the index job writes and the engine, app and CLI query; this module reads it.

See ``docs/bundle-format.md``. Vectors are L2-normalised; every FAISS index uses inner product. A bundle folder holds
immutable installed versions and a ``CURRENT`` pointer (:mod:`retrieval.bundle.store`): :meth:`Bundle.open` resolves the
pointer once and reads only that version, which no writer modifies or removes while the Bundle is open, so a reader
never sees a half-written bundle nor a mix of two versions. Writing: :mod:`retrieval.bundle.writer`.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa

from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.bundle.store import names, versions
from cxr_explorer.retrieval.bundle.store.parts import Part, ThumbStore
from cxr_explorer.retrieval.bundle.store.patch_store import Int8Patches
from cxr_explorer.retrieval.bundle.targets import TARGETS, Target
from cxr_explorer.retrieval.inputs.preprocess import Preprocessing

__all__ = ["FORMAT_VERSION", "TARGETS", "Bundle", "BundleError", "Part", "apply_search_params"]
FORMAT_VERSION = 2
FORMAT_NAME = "cxr-explorer-bundle"


class BundleError(Exception):
    """A user-facing bundle problem: missing or damaged bundle, wrong format version, model mismatch."""


QUICK_VERIFY_BYTES = 64 << 20
"""Files up to this size are checked against their SHA-256 on every open (indexes, vectors, tables: a flipped byte
must not rank corrupted vectors silently); larger ones (patches, thumbnails) by ``info --verify``."""
REQUIRED_KEYS = ("model", "count", "grid_shape", "preprocessing", "dim", "indexes", "files")
_READ_ERRORS = (RuntimeError, ValueError, OSError, EOFError, KeyError, pa.ArrowException)


def apply_search_params(index: faiss.Index, params: dict[str, Any]) -> None:
    """Set the search parameters a bundle records for an index (HNSW ``efSearch``, IVF ``nprobe``); the one place
    that applies them (the engine through :meth:`Bundle.index`, benchmarks directly)."""
    if "efSearch" in params:
        faiss.downcast_index(index).hnsw.efSearch = int(params["efSearch"])  # type: ignore[attr-defined]
    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def _rebuild_hint(manifest: dict[str, Any]) -> str:
    cmd = manifest.get("build", {}).get("command")
    return f"rebuild it with: {cmd}" if cmd else "rebuild it with `cxr-explorer build CORPUS --out DIR --model NAME`"


class Bundle:
    """A finished bundle opened read-only; FAISS positions map to item rows through :meth:`ids`."""

    def __init__(self, root: Path, manifest: dict[str, Any], folder: Path | None = None, version: int = 0,
                 hold: IO[bytes] | None = None) -> None:
        self.root = root
        self.folder = folder if folder is not None else root
        self.version = version
        self.manifest = manifest
        self._indexes: dict[str, faiss.Index] = {}
        self._hold = hold
        self._release = weakref.finalize(self, versions.release, hold)

    @classmethod
    def open(cls, root: str | os.PathLike[str], expect_model: str | None = None) -> Bundle:
        """Open the current version of a bundle folder and hold it (see :meth:`close`); ``expect_model`` refuses one
        built with another model (BundleError)."""
        root = Path(root)
        if store.is_legacy(root):
            raise BundleError(f"bundle {root} has format version 1 (a flat folder), this cxr-explorer reads version "
                              f"{FORMAT_VERSION}; rebuild it with `cxr-explorer build CORPUS --out NEW_DIR`")
        try:
            held = versions.hold_current(root) if root.is_dir() else None
        except ValueError as exc:
            raise BundleError(f"damaged bundle {root}: {exc}; rebuild it") from None
        if held is None:
            if store.BuildArea(root).exists():
                raise BundleError(f"bundle {root} is unfinished (nothing installed yet); rerun the same "
                                  "`cxr-explorer build` command to finish it")
            raise BundleError(f"{root} is not a bundle: it has no installed version (no {names.MANIFEST}); build "
                              "one with `cxr-explorer build`")
        number, folder, hold = held
        try:
            manifest = store.read_json(versions.manifest_path(folder))
        except (OSError, ValueError) as exc:
            versions.release(hold)
            raise BundleError(f"damaged bundle {root}: version {number} has no readable {names.MANIFEST} ({exc}); "
                              "rebuild it") from None
        bundle = cls(root, manifest, folder, number, hold)
        try:
            bundle._check_format()
            if expect_model is not None and bundle.model_name != expect_model:
                raise BundleError(f"bundle {root} was built with model {bundle.model_name!r}, not {expect_model!r}: "
                                  f"query it with --model {bundle.model_name}, or {_rebuild_hint(manifest)} "
                                  f"using --model {expect_model}")
        except BundleError:
            bundle.close()
            raise
        return bundle

    def close(self) -> None:
        """Release this reader's hold on its version (a later writer may then remove it if it is not current)."""
        self._release()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def newer_version_available(self) -> bool:
        """True when another version was installed since this one was opened (reads the small pointer file)."""
        try:
            return (versions.current(self.root) or 0) > self.version
        except (OSError, ValueError):
            return False

    def _check_format(self) -> None:
        m = self.manifest
        if m.get("format") != FORMAT_NAME:
            raise BundleError(f"{self.root}: the {names.MANIFEST} of version {self.version} is not a cxr-explorer "
                              "bundle manifest")
        if m.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"bundle {self.root} has format version {m.get('format_version')}, this cxr-explorer "
                              f"reads version {FORMAT_VERSION}; {_rebuild_hint(m)}")
        missing = [key for key in REQUIRED_KEYS if key not in m]
        if missing:
            raise BundleError(f"damaged bundle {self.root}: {names.MANIFEST} lacks {', '.join(missing)}; "
                              f"{_rebuild_hint(m)}")
        files = m["files"]
        for name, info in files.items():
            path = self.folder / name
            if not path.is_file() or path.stat().st_size != info["bytes"]:
                raise BundleError(f"damaged bundle {self.root}: {name} is missing or has the wrong size; "
                                  f"{_rebuild_hint(m)}")
        small = [n for n, info in files.items() if info["bytes"] <= QUICK_VERIFY_BYTES]
        actual = store.file_checksums(self.folder, small)
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
        actual = store.file_checksums(self.folder, list(files))
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
    def skipped_csv(self) -> Path:
        """The CSV listing the skipped items (id, path, reason, detail) in this version."""
        return self.folder / names.SKIPPED_CSV

    @property
    def metadata_columns(self) -> list[str]:
        """User metadata columns (filterable), in corpus order."""
        return list(self.manifest.get("metadata_columns", []))

    @cached_property
    def label_separators(self) -> dict[str, str]:
        """Multi-label column -> separator: the manifest's record, else detected (``;`` or ``|``) on opening."""
        from cxr_explorer.retrieval.engine.facets import detect_separators

        recorded = self.manifest.get("label_separators")
        return dict(recorded) if isinstance(recorded, dict) else detect_separators(self.metadata)

    @cached_property
    def metadata(self) -> pd.DataFrame:
        """[N] rows: id, path, image_abspath, report, sentences (list[str]) + metadata columns (str)."""
        with self._reading(names.METADATA):
            meta = pd.read_parquet(self.folder / names.METADATA)
            meta["sentences"] = [list(v) if v is not None else [] for v in meta["sentences"]]
        return meta

    @cached_property
    def sentences(self) -> pd.DataFrame:
        """[S] rows: row (int64 item row), text (str); sentence id = position."""
        with self._reading(names.SENTENCES):
            return pd.read_parquet(self.folder / names.SENTENCES)

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
            with self._reading(names.INDEX_FILES[target]):
                index = faiss.read_index(str(self.folder / names.INDEX_FILES[target]))
            apply_search_params(index, self.manifest["indexes"][target].get("params", {}))
            self._indexes[target] = index
        return self._indexes[target]

    def ids(self, target: Target) -> np.ndarray:
        """[M] int64: FAISS position -> item row (images, reports) or sentence id (sentences)."""
        self._check_target(target)
        if target == "reports":
            with self._reading(names.REPORT_ROWS):
                return np.load(self.folder / names.REPORT_ROWS)
        return np.arange(self.count if target == "images" else len(self.sentences), dtype=np.int64)

    def vectors(self, target: Target) -> np.ndarray:
        """[M, D] float32 L2-normalised vectors in FAISS position order."""
        self._check_target(target)
        name = {"images": names.IMAGE_EMB, "reports": names.REPORT_EMB, "sentences": names.SENTENCE_EMB}[target]
        with self._reading(name):
            return np.load(self.folder / name, mmap_mode="r")

    def patches(self) -> np.ndarray | Int8Patches:
        """[N, h, w, D] L2-normalised patch embeddings: float16, memory-mapped; or, for a bundle built with
        ``--patch-store int8``, a read-only float32 view that decodes the rows it is indexed with."""
        if self.manifest.get("patch_store") == "int8":
            with self._reading(names.PATCHES_INT8):
                return Int8Patches(self.folder)
        with self._reading(names.PATCHES):
            return np.load(self.folder / names.PATCHES, mmap_mode="r")

    @cached_property
    def _thumbs(self) -> ThumbStore:
        with self._reading(names.THUMBS_INDEX):
            return ThumbStore(self.folder / names.THUMBS, np.load(self.folder / names.THUMBS_INDEX))

    def thumbnail(self, row: int) -> bytes:
        """JPEG bytes (longest side <= 256) of item ``row``."""
        return self._thumbs[int(row)]

    def image_hashes(self) -> np.ndarray | None:
        """[N, B] uint8 perceptual hashes of the thumbnails (:mod:`retrieval.inputs.image_hash`), or None for a
        version built before they were recorded."""
        if "image_hashes" not in self.manifest:
            return None
        with self._reading(names.IMAGE_HASHES):
            return np.load(self.folder / names.IMAGE_HASHES)

    def image_path(self, row: int) -> Path:
        """Absolute image path recorded at build time."""
        return Path(str(self.metadata["image_abspath"].iloc[int(row)]))

    def as_part(self) -> Part:
        """The bundle's data as a :class:`Part` (memory-mapped), for appending and merging."""
        part = store.read_part(self.folder)
        part.skipped = self.skipped
        return part

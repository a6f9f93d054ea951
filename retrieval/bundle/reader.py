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
import pyarrow.parquet as pq

from cxr_explorer.retrieval.bundle import schema, store
from cxr_explorer.retrieval.bundle.store import integrity, names, versions
from cxr_explorer.retrieval.bundle.store.errors import BundleError, DamagedBundleError
from cxr_explorer.retrieval.bundle.store.parts import Part, ThumbStore
from cxr_explorer.retrieval.bundle.store.patch_store import Int8Patches
from cxr_explorer.retrieval.bundle.targets import TARGETS, Target
from cxr_explorer.retrieval.inputs.preprocess import Preprocessing

__all__ = ["FORMAT_VERSION", "TARGETS", "Bundle", "BundleError", "DamagedBundleError", "Part",
           "apply_search_params"]
FORMAT_VERSION = 2
FORMAT_NAME = "cxr-explorer-bundle"

QUICK_VERIFY_BYTES = 64 << 20
"""Files up to this size without block digests are checked against their SHA-256 on every open (indexes, vectors,
tables: a flipped byte must not rank corrupted vectors silently); larger ones the first time they are read
(:meth:`Bundle.checked_path`); files with block digests block by block as they are read (:meth:`Bundle.checked_rows`,
:mod:`retrieval.bundle.store.integrity`)."""
_READ_ERRORS = (RuntimeError, ValueError, OSError, EOFError, KeyError, pa.ArrowException)


def apply_search_params(index: faiss.Index, params: dict[str, Any]) -> None:
    """Set the search parameters a bundle records for an index (HNSW ``efSearch``, IVF ``nprobe``); the one place
    that applies them (the engine through :meth:`Bundle.index`, benchmarks directly)."""
    if "efSearch" in params:
        faiss.downcast_index(index).hnsw.efSearch = int(params["efSearch"])  # type: ignore[attr-defined]
    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def rebuild_hint(manifest: dict[str, Any]) -> str:
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
        self.verifiable = False
        """True when the manifest's digest was checked on opening (a version written with integrity records)."""
        self._checked: set[str] = set()
        self._blocks: dict[str, integrity.BlockCheck] = {}
        self._copy_checked = False

    @classmethod
    def open(cls, root: str | os.PathLike[str], expect_model: str | None = None, *, check_files: bool = True
             ) -> Bundle:
        """Open the current version of a bundle folder and hold it (see :meth:`close`); ``expect_model`` refuses one
        built with another model (BundleError). The manifest is always checked (its digest and its fields); with
        ``check_files`` False the data files are not hashed on opening (``info --verify`` then checks them all)."""
        root = Path(root)
        if store.is_legacy(root):
            raise BundleError(f"bundle {root} has format version 1 (a flat folder), this cxr-explorer reads version "
                              f"{FORMAT_VERSION}; rebuild it with `cxr-explorer build CORPUS --out NEW_DIR`")
        held = versions.hold_current(root) if root.is_dir() else None
        if held is None:
            if store.BuildArea(root).exists():
                raise BundleError(f"bundle {root} is unfinished (nothing installed yet); rerun the same "
                                  "`cxr-explorer build` command to finish it")
            raise BundleError(f"{root} is not a bundle: it has no installed version (no {names.MANIFEST}); build "
                              "one with `cxr-explorer build`")
        number, folder, hold = held
        try:
            manifest, verifiable = integrity.read_manifest(root, folder)
        except BundleError:
            versions.release(hold)
            raise
        bundle = cls(root, manifest if isinstance(manifest, dict) else {}, folder, number, hold)
        bundle.verifiable = verifiable
        try:
            if not isinstance(manifest, dict):
                schema.check_manifest(root, bundle._manifest_name, manifest)
            bundle._check_format(check_files)
            if expect_model is not None and bundle.model_name != expect_model:
                raise BundleError(f"bundle {root} was built with model {bundle.model_name!r}, not {expect_model!r}: "
                                  f"query it with --model {bundle.model_name}, or {rebuild_hint(manifest)} "
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

    @property
    def _manifest_name(self) -> str:
        return f"{names.VERSIONS}/{self.folder.name}/{names.MANIFEST}"

    def _damaged(self, file: str, problem: str) -> DamagedBundleError:
        return DamagedBundleError(self.root, f"{names.VERSIONS}/{self.folder.name}/{file}", problem,
                                  f"check it with `cxr-explorer info {self.root} --verify`, then "
                                  f"{rebuild_hint(self.manifest)}")

    def _check_format(self, check_files: bool = True) -> None:
        m = self.manifest
        if m.get("format") != FORMAT_NAME:
            raise BundleError(f"{self.root}: the {names.MANIFEST} of version {self.version} is not a cxr-explorer "
                              "bundle manifest")
        if m.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"bundle {self.root} has format version {m.get('format_version')}, this cxr-explorer "
                              f"reads version {FORMAT_VERSION}; {rebuild_hint(m)}")
        schema.check_manifest(self.root, self._manifest_name, m)
        files = m["files"]
        if not check_files:
            return
        for name, info in files.items():
            path = self.folder / name
            if not path.is_file() or path.stat().st_size != info["bytes"]:
                raise self._damaged(name, f"missing or has the wrong size (the manifest says {info['bytes']} bytes)")
        small = [n for n, info in files.items() if "blocks" not in info and info["bytes"] <= QUICK_VERIFY_BYTES]
        self._check_whole(small)
        self._check_shapes()

    def _check_whole(self, files: list[str]) -> None:
        """Hash ``files`` whole and compare with the manifest (each file once per Bundle)."""
        todo = [n for n in files if n not in self._checked]
        actual = store.file_checksums(self.folder, todo)
        for name in todo:
            if actual[name]["sha256"] != self.manifest["files"][name]["sha256"]:
                raise self._damaged(name, "differs from its checksum in the manifest")
            self._checked.add(name)

    def _check_shapes(self) -> None:
        """The item count agrees with the image vectors' header and the grid with the patch store's (headers only)."""
        m = self.manifest
        try:
            with open(self.folder / names.IMAGE_EMB, "rb") as fh:
                np.lib.format.read_magic(fh)
                shape = np.lib.format.read_array_header_1_0(fh)[0]
        except (OSError, ValueError) as exc:
            raise self._damaged(names.IMAGE_EMB, f"unreadable header ({exc})") from None
        if len(shape) != 2 or shape[0] != m["count"] or shape[1] != m["dim"]:
            raise self._damaged(names.MANIFEST, f'field "count"/"dim": {m["count"]} x {m["dim"]} but '
                                f"{names.IMAGE_EMB} holds {shape}")
        try:
            with open(self.folder / names.METADATA, "rb") as fh:  # a file, not a name pyarrow could take for a URI
                stored = set(pq.read_schema(fh).names)
        except (OSError, pa.ArrowException) as exc:
            raise self._damaged(names.METADATA, f"unreadable schema ({str(exc)[:80]})") from None
        missing = [c for c in self.metadata_columns if c not in stored]
        if missing:
            raise self._damaged(names.MANIFEST, f'field "metadata_columns": {missing[0]!r} is not a column of '
                                f"{names.METADATA}")

    def checked_path(self, name: str) -> Path:
        """The path of data file ``name`` of this version, its bytes verified against the manifest first (files
        hashed on opening at once; larger ones hashed whole, or block by block, the first time). Every reader of a
        bundle file goes through here or :meth:`checked_rows`."""
        info = self.manifest["files"].get(name)
        if info is not None and name not in self._checked:
            if "blocks" in info:
                self._block_check(name).check_all()
                self._checked.add(name)
            else:
                self._check_whole([name])
        return self.folder / name

    def _block_check(self, name: str) -> integrity.BlockCheck:
        if name not in self._blocks:
            self._blocks[name] = integrity.BlockCheck(self.root, self.folder, name, self.manifest["files"][name])
        return self._blocks[name]

    def refuse_patches(self, row: int, problem: str) -> DamagedBundleError:
        """The error for stored patches of ``row`` whose values a valid bundle cannot hold."""
        name = names.PATCHES_INT8 if self.manifest.get("patch_store") == "int8" else names.PATCHES
        return self._damaged(name, f"row {int(row)}: {problem}")

    def checked_rows(self, name: str) -> np.ndarray | integrity.CheckedRows:
        """The ``.npy`` data file ``name`` memory-mapped read-only, each row verified the first time it is read
        (:class:`retrieval.bundle.store.integrity.CheckedRows`). A version without block digests gives the plain
        memory map (checked whole on opening when small)."""
        with self._reading(name):
            array = np.load(self.folder / name, mmap_mode="r")
        info = self.manifest["files"].get(name, {})
        return integrity.CheckedRows(array, self._block_check(name)) if "blocks" in info else array

    @contextlib.contextmanager
    def _reading(self, name: str) -> Iterator[None]:
        """Turn a failure to read a data file (bad header, truncated, flipped bytes) into one BundleError line."""
        try:
            yield
        except _READ_ERRORS as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise self._damaged(name, f"cannot be read ({reason})") from None

    def check_model(self, identity: dict[str, Any]) -> None:
        """Refuse a model whose name, revision or image weights checksum differ from the bundle's."""
        built = self.manifest["model"]
        for key in ("name", "revision", "image_md5"):
            if built.get(key) != identity.get(key):
                raise BundleError(f"bundle {self.root} was built with {key} {built.get(key)!r} but the loaded "
                                  f"model has {identity.get(key)!r}; use the bundle's model or "
                                  f"{rebuild_hint(self.manifest)}")

    def verify(self) -> list[str]:
        """Recompute every data file's SHA-256 and check every block digest; returns the names that differ from the
        manifest."""
        files = self.manifest.get("files", {})
        actual = store.file_checksums(self.folder, list(files))
        bad = [n for n, info in files.items() if actual[n]["sha256"] != info["sha256"]]
        for name, info in files.items():
            if "blocks" in info and name not in bad:
                try:
                    integrity.BlockCheck(self.root, self.folder, name, info).check_all()
                except (DamagedBundleError, OSError):
                    bad.append(names.block_digests(name))
        return bad

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
        if isinstance(recorded, dict):
            return dict(recorded)
        return detect_separators(self.metadata[[c for c in self.metadata_columns if c in self.metadata.columns]])

    @cached_property
    def metadata(self) -> pd.DataFrame:
        """[N] rows: id, path, image_abspath, report, sentences (list[str]) + metadata columns (str)."""
        with self._reading(names.METADATA):
            meta = pd.read_parquet(self.checked_path(names.METADATA))
            meta["sentences"] = [list(v) if v is not None else [] for v in meta["sentences"]]
        return meta

    @cached_property
    def sentences(self) -> pd.DataFrame:
        """[S] rows: row (int64 item row), text (str); sentence id = position."""
        with self._reading(names.SENTENCES):
            return pd.read_parquet(self.checked_path(names.SENTENCES))

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
                index = faiss.read_index(str(self.checked_path(names.INDEX_FILES[target])))
            apply_search_params(index, self.manifest["indexes"][target].get("params", {}))
            self._indexes[target] = index
        return self._indexes[target]

    def ids(self, target: Target) -> np.ndarray:
        """[M] int64: FAISS position -> item row (images, reports) or sentence id (sentences)."""
        self._check_target(target)
        if target == "reports":
            with self._reading(names.REPORT_ROWS):
                return np.load(self.checked_path(names.REPORT_ROWS))
        return np.arange(self.count if target == "images" else len(self.sentences), dtype=np.int64)

    def vectors(self, target: Target) -> np.ndarray:
        """[M, D] float32 L2-normalised vectors in FAISS position order."""
        self._check_target(target)
        name = {"images": names.IMAGE_EMB, "reports": names.REPORT_EMB, "sentences": names.SENTENCE_EMB}[target]
        with self._reading(name):
            return np.load(self.checked_path(name), mmap_mode="r")

    def patches(self) -> np.ndarray | integrity.CheckedRows | Int8Patches:
        """[N, h, w, D] L2-normalised patch embeddings: float16, memory-mapped; or, for a bundle built with
        ``--patch-store int8``, a read-only float32 view that decodes the rows it is indexed with."""
        if self.manifest.get("patch_store") == "int8":
            return Int8Patches(self.checked_rows(names.PATCHES_INT8), self.checked_rows(names.PATCH_SCALES))
        return self.checked_rows(names.PATCHES)

    @cached_property
    def _thumbs(self) -> ThumbStore:
        with self._reading(names.THUMBS_INDEX):
            offsets = np.load(self.checked_path(names.THUMBS_INDEX))
        info = self.manifest["files"].get(names.THUMBS, {})
        return ThumbStore(self.folder / names.THUMBS, offsets,
                          self._block_check(names.THUMBS).check if "blocks" in info else None)

    def thumbnail(self, row: int) -> bytes:
        """JPEG bytes (longest side <= 256) of item ``row``."""
        return self._thumbs[int(row)]

    def image_hashes(self) -> np.ndarray | None:
        """[N, B] uint8 perceptual hashes of the thumbnails (:mod:`retrieval.inputs.image_hash`), or None for a
        version built before they were recorded."""
        if "image_hashes" not in self.manifest:
            return None
        with self._reading(names.IMAGE_HASHES):
            return np.load(self.checked_path(names.IMAGE_HASHES))

    def image_path(self, row: int) -> Path:
        """Absolute image path recorded at build time."""
        return Path(str(self.metadata["image_abspath"].iloc[int(row)]))

    def as_part(self) -> Part:
        """The bundle's data as a :class:`Part` (memory-mapped), for appending and merging: every file is verified
        first (all of it is copied into the new version, whose digests must not certify damaged bytes)."""
        if not self._copy_checked:
            bad = self.verify()
            if bad:
                raise self._damaged(bad[0], "its bytes differ from the manifest; nothing was written")
            self._copy_checked = True
        part = store.read_part(self.folder)
        part.skipped = self.skipped
        return part

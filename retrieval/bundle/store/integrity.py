"""What a version's bytes must be, recorded when it is written and checked before a reader trusts them.

Every data file has ``{bytes, sha256}`` in the manifest's ``files``. The files read by row (patches, their int8
codes and scales, thumbnails) also get block digests: ``FILE.blocks`` holds the SHA-256 of each ``BLOCK`` bytes of
``FILE`` (32 bytes each), and the manifest entry ``blocks.top`` the SHA-256 of each ``BLOCK`` bytes of ``FILE.blocks``.
A reader checks a block the first time it reads it (:class:`BlockCheck`: one 64 KiB piece of digests and the blocks a
row spans), so neither opening a bundle nor grounding one case reads more than the row it uses, whatever the corpus
size. The manifest is covered by ``manifest.sha256`` (:func:`seal_manifest`, :func:`read_manifest`).

A version written before these records existed has no ``manifest.sha256`` and no ``blocks``: it still opens
(:func:`read_manifest` says it is not verifiable) and its files are checked by their whole-file SHA-256 only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxr_explorer.retrieval.bundle.store.errors import DamagedBundleError
from cxr_explorer.retrieval.bundle.store.names import (
    MANIFEST,
    MANIFEST_DIGEST,
    PATCH_SCALES,
    PATCHES,
    PATCHES_INT8,
    THUMBS,
    block_digests,
)

BLOCK = 64 << 10
"""Bytes per checked block (and per piece of a ``.blocks`` file covered by one ``top`` digest)."""
DIGEST = 32
INTEGRITY = "integrity"
"""The manifest key of a version written with these records (``{"block": BLOCK}``): its ``manifest.sha256`` must
exist."""
BLOCKED = (PATCHES, PATCHES_INT8, PATCH_SCALES, THUMBS)
"""The files read by row: checked block by block on first read instead of as a whole."""


def describe(folder: Path, files: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{name: {bytes, sha256[, blocks]}}`` for ``files`` of a staged version, in one pass over each; a file of
    :data:`BLOCKED` gets its ``FILE.blocks`` written beside it and ``blocks: {size, top}`` in its entry."""
    out: dict[str, dict[str, Any]] = {}
    for name in files:
        whole = hashlib.sha256()
        blocks = bytearray() if name in BLOCKED else None
        with open(folder / name, "rb") as fh:
            while piece := fh.read(BLOCK * 128):
                whole.update(piece)
                if blocks is not None:
                    for start in range(0, len(piece), BLOCK):
                        blocks += hashlib.sha256(piece[start:start + BLOCK]).digest()
        entry: dict[str, Any] = {"bytes": (folder / name).stat().st_size, "sha256": whole.hexdigest()}
        if blocks is not None:
            data = bytes(blocks)
            with open(folder / block_digests(name), "wb") as fh:
                fh.write(data)
            entry["blocks"] = {"size": BLOCK, "top": [hashlib.sha256(data[i:i + BLOCK]).hexdigest()
                                                      for i in range(0, len(data), BLOCK)]}
        out[name] = entry
    return out


def seal_manifest(folder: Path) -> None:
    """Write ``manifest.sha256`` for the ``manifest.json`` already written in ``folder``."""
    digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    (folder / MANIFEST_DIGEST).write_text(digest + "\n", encoding="ascii")


MANIFEST_FIX = ("nothing was read from it; rebuild the bundle (`cxr-explorer build CORPUS --out DIR`), or point "
                "CURRENT at an older complete version")


def read_manifest(root: Path, folder: Path) -> tuple[Any, bool]:
    """(the parsed manifest of version ``folder``, True when its digest was checked; False: an older version without
    one). DamagedBundleError when its bytes differ from the digest or do not parse."""
    where = folder.relative_to(root) / MANIFEST if folder.is_relative_to(root) else folder / MANIFEST
    try:
        data = (folder / MANIFEST).read_bytes()
    except OSError as exc:
        raise DamagedBundleError(root, str(where), f"cannot be read ({exc.strerror or exc})", MANIFEST_FIX) from None
    try:
        recorded = (folder / MANIFEST_DIGEST).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        recorded = None
    except (OSError, ValueError):
        recorded = ""
    if recorded is not None and recorded != hashlib.sha256(data).hexdigest():
        raise DamagedBundleError(root, str(where), f"its bytes differ from {MANIFEST_DIGEST}", MANIFEST_FIX)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedBundleError(root, str(where), f"not valid JSON ({str(exc)[:80]})", MANIFEST_FIX) from None
    if recorded is None and isinstance(manifest, dict) and INTEGRITY in manifest:
        raise DamagedBundleError(root, str(where), f"{MANIFEST_DIGEST} is missing", MANIFEST_FIX)
    return manifest, recorded is not None


class BlockCheck:
    """Checks byte ranges of one data file against its block digests, each block once; DamagedBundleError naming the
    file and the block on a mismatch."""

    def __init__(self, root: Path, folder: Path, name: str, entry: dict[str, Any]) -> None:
        self.root, self.folder, self.name = root, folder, name
        self.size = int(entry["blocks"]["size"])
        self.top = [str(t) for t in entry["blocks"]["top"]]
        self.length = int(entry["bytes"])
        self._ok = np.zeros(-(-self.length // self.size), dtype=bool)
        self._pieces: dict[int, bytes] = {}

    def _fail(self, problem: str) -> DamagedBundleError:
        return DamagedBundleError(self.root, str(self.folder.relative_to(self.root) / self.name)
                                  if self.folder.is_relative_to(self.root) else str(self.folder / self.name), problem)

    def _digests(self, piece: int) -> bytes:
        """The checked ``piece``-th BLOCK bytes of ``FILE.blocks``."""
        if piece not in self._pieces:
            if piece >= len(self.top):
                raise self._fail(f"block digest piece {piece} is not recorded")
            with open(self.folder / block_digests(self.name), "rb") as fh:
                data = os.pread(fh.fileno(), BLOCK, piece * BLOCK)
            if hashlib.sha256(data).hexdigest() != self.top[piece]:
                raise self._fail(f"its block digests ({block_digests(self.name)}) differ from the manifest")
            self._pieces[piece] = data
        return self._pieces[piece]

    def check(self, start: int, stop: int) -> None:
        """Verify bytes ``[start, stop)`` of the file (only blocks not checked before are read)."""
        if stop <= start:
            return
        first, last = start // self.size, (min(stop, self.length) - 1) // self.size
        todo = [b for b in range(first, last + 1) if not self._ok[b]]
        if not todo:
            return
        with open(self.folder / self.name, "rb") as fh:
            for b in todo:
                at = b * DIGEST
                piece = self._digests(at // BLOCK)
                want = piece[at % BLOCK: at % BLOCK + DIGEST]
                data = os.pread(fh.fileno(), self.size, b * self.size)
                if hashlib.sha256(data).digest() != want:
                    raise self._fail(f"block {b} (bytes {b * self.size}..{b * self.size + len(data)}) differs "
                                     "from its digest")
                self._ok[b] = True

    def check_all(self) -> None:
        """Verify the whole file."""
        self.check(0, self.length)


class CheckedRows:
    """A read-only ``[N, ...]`` memory-mapped ``.npy`` whose rows are verified (:class:`BlockCheck`) before they are
    returned: indexing with an int, a slice or a list of rows checks only the blocks those rows span."""

    def __init__(self, array: np.memmap, check: BlockCheck) -> None:
        self.array, self._check = array, check
        self._row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize
        self._offset = int(array.offset)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def itemsize(self) -> int:
        return int(self.array.itemsize)

    @property
    def ndim(self) -> int:
        return int(self.array.ndim)

    @property
    def size(self) -> int:
        return int(self.array.size)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def _rows(self, idx: Any) -> list[tuple[int, int]]:
        """Row ranges ``[a, b)`` that ``idx`` (its first axis) reads."""
        first = idx[0] if isinstance(idx, tuple) and idx else idx
        n = len(self)
        if isinstance(first, slice):
            a, b, step = first.indices(n)
            if step == 1 or b <= a:
                return [(a, max(a, b))]
            rows = np.arange(a, b, step)
        elif first is Ellipsis or (isinstance(idx, tuple) and not idx):
            return [(0, n)]
        else:
            rows = np.atleast_1d(np.arange(n)[first])
        return [(int(r), int(r) + 1) for r in np.unique(rows)]

    def __getitem__(self, idx: Any) -> np.ndarray:
        for a, b in self._rows(idx):
            self._check.check(self._offset + a * self._row_bytes, self._offset + b * self._row_bytes)
        return self.array[idx]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return np.asarray(out, dtype=dtype) if dtype is not None else np.asarray(out)

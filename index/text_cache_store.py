"""Corpus-sized parts of the build's text cache, held compactly: 16-byte digests in sorted arrays, vectors on disk.

:class:`DigestIndex` maps a 16-byte BLAKE2b digest of a normalised text to its row: 24 bytes per distinct text
(two uint64 halves and an int64 row in sorted numpy arrays, plus a small dict of the latest additions) instead of a
Python str key and dict slot (~150 bytes for a one-line sentence). :class:`VectorFile` keeps the rows' [D] float32
vectors in an append-only file read back with ``pread``: never memory-mapped, so only the rows a chunk asks for are
in the process, not the corpus's (mapped pages would count in its RSS until unmapped).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO

import numpy as np

DIGEST_BYTES = 16
#: Additions kept in a dict before they are merged into the sorted arrays (one sort of the whole index per merge).
MERGE_EVERY = 65_536


def digest(key: str) -> bytes:
    """The 16-byte BLAKE2b digest of a cache key (its UTF-8 bytes)."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


def _halves(digests: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """[K] digests -> (hi [K], lo [K]) uint64 halves."""
    both = np.frombuffer(b"".join(digests), dtype="<u8").reshape(-1, 2) if digests else np.zeros((0, 2), np.uint64)
    return both[:, 0].astype(np.uint64), both[:, 1].astype(np.uint64)


class DigestIndex:
    """16-byte digest -> row (int >= 0): sorted ``hi``/``lo``/``rows`` arrays [M] plus ``recent`` (dict) additions."""

    def __init__(self, merge_every: int = MERGE_EVERY) -> None:
        self.merge_every = merge_every
        self._hi = np.zeros(0, np.uint64)
        self._lo = np.zeros(0, np.uint64)
        self._rows = np.zeros(0, np.int64)
        self._recent: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._rows) + len(self._recent)

    @property
    def nbytes(self) -> int:
        """Bytes of the sorted arrays (the dict of recent additions, at most ``merge_every`` entries, apart)."""
        return int(self._hi.nbytes + self._lo.nbytes + self._rows.nbytes)

    def add(self, key: bytes, row: int) -> None:
        """Record ``key`` -> ``row``; the caller checks it is absent (:meth:`lookup`)."""
        self._recent[key] = row
        if len(self._recent) >= self.merge_every:
            self._merge()

    def _merge(self) -> None:
        keys = list(self._recent)
        hi, lo = _halves(keys)
        rows = np.fromiter(self._recent.values(), np.int64, len(keys))
        hi, lo, rows = (np.concatenate([a, b]) for a, b in ((self._hi, hi), (self._lo, lo), (self._rows, rows)))
        order = np.lexsort((lo, hi))
        self._hi, self._lo, self._rows = hi[order], lo[order], rows[order]
        self._recent = {}

    def lookup(self, keys: list[bytes]) -> np.ndarray:
        """[K] digests -> [K] int64 rows, -1 where absent."""
        out = np.full(len(keys), -1, np.int64)
        if len(self._rows) and keys:
            hi, lo = _halves(keys)
            left = np.searchsorted(self._hi, hi, "left")
            right = np.searchsorted(self._hi, hi, "right")
            for i in np.flatnonzero(right > left):  # equal high halves: compare the low ones (rarely more than one)
                for j in range(int(left[i]), int(right[i])):
                    if self._lo[j] == lo[i]:
                        out[i] = self._rows[j]
                        break
        for i in np.flatnonzero(out < 0):
            out[i] = self._recent.get(keys[i], -1)
        return out


class VectorFile:
    """Append-only [M, D] float32 rows in a file (``path``, truncated on open; None: an anonymous temporary file)."""

    def __init__(self, dim: int, path: Path | None = None) -> None:
        self.dim = dim
        self.path = path
        self._fh: IO[bytes] = open(path, "w+b") if path is not None else tempfile.TemporaryFile()  # noqa: SIM115
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, vectors: np.ndarray) -> int:
        """Append [K, D] vectors; returns the row of the first."""
        first = self._count
        block = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        os.pwrite(self._fh.fileno(), block.tobytes(), first * self.dim * 4)
        self._count += len(block)
        return first

    def read(self, rows: np.ndarray) -> np.ndarray:
        """[K] rows (each < len) -> [K, D] float32, one ``pread`` per distinct row (runs of rows in one)."""
        out = np.empty((len(rows), self.dim), np.float32)
        if not len(rows):
            return out
        unique, inverse = np.unique(rows, return_inverse=True)
        got = np.empty((len(unique), self.dim), np.float32)
        row_bytes = self.dim * 4
        starts = np.flatnonzero(np.diff(unique, prepend=-2) != 1)  # runs of consecutive rows
        ends = np.append(starts[1:], len(unique))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            data = os.pread(self._fh.fileno(), (e - s) * row_bytes, int(unique[s]) * row_bytes)
            got[s:e] = np.frombuffer(data, np.float32).reshape(e - s, self.dim)
        out[:] = got[inverse.reshape(-1)]
        return out

    def close(self) -> None:
        """Close the file and remove it (a named one)."""
        if not self._fh.closed:
            self._fh.close()
            if self.path is not None:
                self.path.unlink(missing_ok=True)

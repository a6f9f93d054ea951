"""Resumable progress: chunks committed atomically, the settings of the build, and a lock on the output folder.

A chunk is written to ``chunks/.tmp-NNNNNN`` and renamed to ``chunks/NNNNNN`` in one ``os.rename``; it lists every
corpus id it accounts for (indexed or skipped). After a crash the temporary folder is discarded and a rerun skips
exactly the ids of the committed chunks, so every item ends up in the bundle once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval import bundle_io
from retrieval.bundle import Part

BUILD_STATE = "build.json"
LOCK = ".lock"
# Settings that change the vectors: a resumed or appended build must use the same ones.
SETTINGS_THAT_MATTER = ("model", "precision", "shard")


class BuildStateError(ValueError):
    """The output folder holds a build that this command may not continue (other settings, busy, not a bundle)."""


@dataclass
class ChunkStore:
    """The ``chunks/`` folder of a bundle being built."""

    root: Path

    @property
    def folder(self) -> Path:
        return self.root / bundle_io.CHUNKS

    def committed(self) -> list[Path]:
        """Committed chunk folders in commit order."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and p.name.isdigit())

    def discard_partial(self) -> None:
        """Remove chunk folders a crash left half-written."""
        if self.folder.is_dir():
            for p in self.folder.iterdir():
                if p.name.startswith(".tmp-"):
                    shutil.rmtree(p, ignore_errors=True)

    def done_ids(self) -> set[str]:
        """Every corpus id some committed chunk accounts for."""
        done: set[str] = set()
        for chunk in self.committed():
            done.update(bundle_io.read_json(chunk / bundle_io.COVERED))
        return done

    def commit(self, part: Part, grid: tuple[int, int], dim: int) -> Path:
        """Write ``part`` as the next chunk, atomically."""
        chunks = self.committed()
        number = int(chunks[-1].name) + 1 if chunks else 0
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".tmp-{number:06d}"
        if tmp.exists():
            shutil.rmtree(tmp)
        bundle_io.write_parts(tmp, [part], grid, dim)
        final = self.folder / f"{number:06d}"
        os.rename(tmp, final)
        return final

    def parts(self) -> list[Part]:
        """Committed chunks as parts (patches memory-mapped)."""
        return [bundle_io.read_part(c) for c in self.committed()]


def read_state(root: Path) -> dict[str, Any] | None:
    """The settings recorded by the first run of a build in ``root``, or None."""
    path = root / BUILD_STATE
    return bundle_io.read_json(path) if path.is_file() else None


def write_state(root: Path, settings: dict[str, Any]) -> None:
    """Record the build settings (atomically)."""
    root.mkdir(parents=True, exist_ok=True)
    bundle_io.write_json(root / BUILD_STATE, settings)


def check_state(root: Path, settings: dict[str, Any], check_corpus: bool, verb: str = "continue") -> None:
    """Refuse to continue (or append to) a build with settings that change the vectors, naming the difference."""
    previous = read_state(root)
    if previous is None:
        return
    for key in SETTINGS_THAT_MATTER:
        if previous.get(key) != settings.get(key):
            raise BuildStateError(f"cannot {verb} the build in {root}: it was made with {key}={previous.get(key)!r}, "
                                  f"this command has {key}={settings.get(key)!r}; use the same {key} or a new --out")
    if check_corpus:
        for key in ("corpus", "columns", "hash_ids"):
            if previous.get(key) != settings.get(key):
                raise BuildStateError(f"the build in {root} was started with {key}={previous.get(key)!r}, this "
                                      f"command has {key}={settings.get(key)!r}; rerun the same command, or pass "
                                      "--append to add a different corpus, or use a new --out")


class FolderLock:
    """An exclusive ``flock`` on ``root/.lock``; released by the OS even after ``kill -9``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fh: Any = None

    def __enter__(self) -> FolderLock:
        self.root.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.root / LOCK, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise BuildStateError(f"another cxr-explorer build or merge is writing {self.root}; wait for it to "
                                  "finish (or stop it) and rerun") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"{os.getpid()} {time.time():.0f}\n")
        self._fh.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()

"""The work area of an unfinished build (``ROOT/_build``): its settings, committed chunks, temporal chunks, staging.

A chunk is written to ``chunks/.tmp-NNNNNN`` and renamed to ``chunks/NNNNNN`` in one ``os.rename``; it lists every
corpus id it accounts for (indexed or skipped). After a crash the temporary folder is discarded and a rerun skips
exactly the ids of the committed chunks. The settings (``build.json``) carry a ``build_id`` that the installed
manifest repeats, so a rerun after a crash between the install and the retirement of this area recognises that the
build is already installed (:func:`retrieval.bundle.store.versions.tidy`).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxr_explorer.retrieval.bundle.store import space, versions
from cxr_explorer.retrieval.bundle.store.names import (
    BUILD_AREA,
    BUILD_STATE,
    CHUNKS,
    COVERED,
    STAGING,
    TEMPORAL_CHUNKS,
    TMP_PREFIX,
)
from cxr_explorer.retrieval.bundle.store.parts import Part, ThumbStore, read_json, read_part, write_json, write_parts


def part_bytes(part: Part) -> int:
    """Bytes the data files of ``part`` take on disk, roughly (patches, vectors, thumbnails, tables)."""
    if isinstance(part.thumbnails, ThumbStore):  # stored: the index has the lengths (no file reads)
        thumbs = int(np.asarray(part.thumbnails.offsets)[:, 1].sum()) if len(part.thumbnails) else 0
    else:
        thumbs = sum(len(t) for t in part.thumbnails)
    arrays = (part.patches, part.image_emb, part.report_emb, part.sentence_emb)
    return int(sum(int(a.size) * a.itemsize for a in arrays) + thumbs + 2_000 * part.count + 65_536)


@dataclass
class ChunkStore:
    """The committed chunks of a build (``ROOT/_build/chunks``); ``root`` is the bundle folder named in messages."""

    folder: Path
    root: Path

    def committed(self) -> list[Path]:
        """Committed chunk folders in commit order."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and p.name.isdigit())

    def discard_partial(self) -> None:
        """Remove chunk folders a crash left half-written."""
        if self.folder.is_dir():
            for p in self.folder.iterdir():
                if p.name.startswith(TMP_PREFIX):
                    shutil.rmtree(p, ignore_errors=True)

    def done_ids(self) -> set[str]:
        """Every corpus id some committed chunk accounts for."""
        done: set[str] = set()
        for chunk in self.committed():
            done.update(read_json(chunk / COVERED))
        return done

    def commit(self, part: Part, grid: tuple[int, int], dim: int) -> Path:
        """Write ``part`` as the next chunk, atomically; DiskSpaceError (nothing committed) on a full disk."""
        chunks = self.committed()
        number = int(chunks[-1].name) + 1 if chunks else 0
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{TMP_PREFIX}{number:06d}"
        if tmp.exists():
            shutil.rmtree(tmp)
        space.reserve(self.root, part_bytes(part))
        try:
            with space.disk_errors(self.root):
                write_parts(tmp, [part], grid, dim)
        except space.DiskSpaceError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        final = self.folder / f"{number:06d}"
        commit_chunk(tmp, final)
        return final

    def parts(self) -> list[Part]:
        """Committed chunks as parts (patches memory-mapped read-only)."""
        return [read_part(c) for c in self.committed()]


def commit_chunk(tmp: Path, final: Path) -> None:
    """Make a fully written chunk folder committed (one ``os.rename``)."""
    tmp.rename(final)


@dataclass
class BuildArea:
    """``ROOT/_build`` of the bundle folder ``root``."""

    root: Path

    @property
    def folder(self) -> Path:
        return Path(self.root) / BUILD_AREA

    @property
    def chunks(self) -> ChunkStore:
        return ChunkStore(self.folder / CHUNKS, Path(self.root))

    @property
    def temporal_chunks(self) -> Path:
        """Folder of the temporal stage's committed chunk files."""
        return self.folder / TEMPORAL_CHUNKS

    def exists(self) -> bool:
        return self.folder.is_dir()

    def state(self) -> dict[str, Any] | None:
        """The settings recorded by the first run of this build, or None."""
        path = self.folder / BUILD_STATE
        return dict(read_json(path)) if path.is_file() else None

    def write_state(self, settings: dict[str, Any]) -> str:
        """Record ``settings`` (atomically), keeping the area's ``build_id`` (a new one for a new area); returns it."""
        previous = self.state() or {}
        build_id = str(previous.get("build_id") or uuid.uuid4().hex)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.folder / BUILD_STATE, {**settings, "build_id": build_id})
        return build_id

    def new_staging(self) -> Path:
        """A fresh, empty staging folder (a leftover one from a crash is removed)."""
        staging = self.folder / STAGING
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        return staging

    def retire(self) -> None:
        """Remove the whole area (after its build was installed)."""
        versions.retire_build_area(self.root)

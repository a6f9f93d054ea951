"""The one owner of atomic file writes: every file we write goes through here, whole files by rename and append-only
journals (review files, collections, the audit log) by :func:`append_line`.

A file is written under a temporary name in its own folder, flushed and fsynced, renamed over the target and the
folder fsynced, so a reader (or a rerun after a kill, a full disk or a power cut) sees either the old file or the
new one, never a part. :func:`write_set` writes a set of files whose last one (a summary) vouches for the others:
the old summary goes first and the new one lands last, so a summary on disk always describes complete files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["append_line", "fsync_dir", "locked", "write_bytes", "write_json", "write_set", "write_text", "writing"]

Writer = Callable[[IO[bytes]], object]
"""Writes one file's content to an open binary file (e.g. ``lambda fh: frame.to_parquet(fh)``)."""


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """fsync a folder so that a rename or unlink in it survives a power cut (a no-op where folders cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """An open binary file that becomes ``path`` only when the block ends without an exception (temporary name in
    the same folder, fsync, rename, fsync of the folder); on an exception the temporary file is removed and
    ``path`` is untouched."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically make ``path`` hold ``data``."""
    with writing(path) as fh:
        fh.write(data)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Atomically make ``path`` hold ``text``."""
    write_bytes(path, text.encode(encoding))


def write_json(path: str | os.PathLike[str], obj: Any, **dumps: Any) -> None:
    """Atomically write ``obj`` as UTF-8 JSON plus a newline (``dumps``: json.dumps options; indent 2 unless
    given)."""
    write_text(path, json.dumps(obj, **{"indent": 2, **dumps}) + "\n")


def write_set(files: Mapping[Path, Writer], *, last: Path, last_writer: Writer) -> None:
    """Write ``files`` (path -> writer) and then ``last`` (the summary that vouches for them), each atomically.

    The old ``last`` is removed first, so a kill part-way leaves complete files and no summary (never a summary
    beside files of another run)."""
    summary = Path(last)
    with contextlib.suppress(FileNotFoundError):
        summary.unlink()
        fsync_dir(summary.parent)
    for path, write in files.items():
        with writing(path) as fh:
            write(fh)
    with writing(summary) as fh:
        last_writer(fh)


def append_line(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Append ``data`` (one line) to a journal under an exclusive ``flock``, sealing a torn last line first (a writer
    killed mid-line keeps its bytes on their own line, which readers skip), then fsync; the folder is fsynced when
    the file is new (made with permission bits ``mode``)."""
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (made empty if absent) for the block: one writer at a time across
    processes, released by the OS if the holder dies."""
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

"""The one owner of atomic file writes: every file we write that is not append-only goes through here.

A file is written under a temporary name in its own folder, flushed and fsynced, renamed over the target and the
folder fsynced, so a reader (or a rerun after a kill, a full disk or a power cut) sees either the old file or the
new one, never a part. :func:`write_set` writes a set of files whose last one (a summary) vouches for the others:
the old summary goes first and the new one lands last, so a summary on disk always describes complete files.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["fsync_dir", "write_bytes", "write_json", "write_set", "write_text", "writing"]

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

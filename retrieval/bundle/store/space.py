"""Free-space checks before large writes, and a full disk (ENOSPC) turned into one resumable line.

Every growing bundle file is written with plain ``write`` calls (never a writable memory map), so a full disk is an
``OSError`` (ENOSPC), not a SIGBUS; :func:`reserve` refuses the work up front when the estimate does not fit.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from cxr_explorer.retrieval.bundle.store.errors import DiskSpaceError

MARGIN = 1.1  # estimates are within a few percent; keep 10 % head room
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _size(n: float) -> str:
    """Bytes in the unit that reads: GB from 1 GB, MB from 1 MB, else kB; three significant figures at most."""
    unit, scale = next(((u, s) for u, s in (("GB", 1e9), ("MB", 1e6)) if n >= s), ("kB", 1e3))
    value = n / scale
    digits = 2 if 0 < value < 10 else 1 if 0 < value < 100 else 0
    return f"{value:.{digits}f} {unit}"


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (disk_usage needs a path that exists)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def full_disk_message(folder: Path, need: float | None, free: float | None) -> str:
    """The one line printed for a full disk."""
    size = f"about {_size(need)}, {_size(free or 0)} free" if need is not None else \
        f"more space than is free ({_size(free or 0)} free)"
    return (f"not enough disk space in {folder}: the bundle needs {size}; free space and rerun the same command "
            "(committed chunks are kept)")


def reserve(folder: Path, need_bytes: float) -> None:
    """DiskSpaceError (one line) when the file system of ``folder`` has less than ``need_bytes`` (+10 %) free."""
    need = float(need_bytes) * MARGIN
    free = float(shutil.disk_usage(_existing(folder)).free)
    if free < need:
        raise DiskSpaceError(full_disk_message(Path(folder), need, free))


@contextlib.contextmanager
def disk_errors(folder: Path) -> Iterator[None]:
    """Turn ENOSPC / EDQUOT raised inside the block into :class:`DiskSpaceError` naming ``folder``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        free = float(shutil.disk_usage(_existing(folder)).free)
        raise DiskSpaceError(full_disk_message(Path(folder), None, free)) from None

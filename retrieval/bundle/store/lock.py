"""The writer lock of a bundle folder: one job (build, append, merge, temporal stage) writes it at a time.

``ROOT/writer.lock`` is held with an exclusive ``flock`` (released by the OS when the process dies, even by
``kill -9``) and records its holder (pid, command, start time, host), so a second writer is refused at once with
one line naming it. Entering the lock also tidies the folder: versions no reader holds, and leftovers of a crash; a
damaged ``CURRENT`` stops the writer there, before anything is removed or written.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from cxr_explorer.retrieval.bundle.store import versions
from cxr_explorer.retrieval.bundle.store.errors import WriterBusyError
from cxr_explorer.retrieval.bundle.store.names import WRITER_LOCK


def _holder_line(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}: "
            f"{info.get('command', '?')}")


class WriterLock:
    """Exclusive, non-blocking writer lock of ``root``; :class:`WriterBusyError` when another job holds it."""

    def __init__(self, root: Path, command: str | None = None) -> None:
        self.root = Path(root)
        self.command = command or " ".join(["cxr-explorer", *sys.argv[1:]])
        self._fh: Any = None

    def __enter__(self) -> WriterLock:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / WRITER_LOCK
        fh = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise WriterBusyError(f"{self.root} is being written by another job ({_holder_line(path)}); wait for it "
                                  "to finish (or stop it) and rerun") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                             "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}) + "\n")
        fh.flush()
        self._fh = fh
        try:
            versions.tidy(self.root)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def holder(root: Path) -> dict[str, Any] | None:
    """The recorded holder of ``root``'s writer lock (pid, host, command, started), or None when free."""
    path = Path(root) / WRITER_LOCK
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = path.read_text(encoding="utf-8")
            return json.loads(text) if text.strip() else {}
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None

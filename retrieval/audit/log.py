"""An append-only audit log of JSON lines: one line per action, written with one ``write`` to a file opened
``O_APPEND`` under an exclusive ``flock`` on ``<log>.lock`` and followed by ``fsync``, so the app's sessions and its
replicas never interleave or lose a line, and an acknowledged line survives a crash.

Rotation by size, under the same lock: when the next line would take the file past ``max_bytes``, ``log`` becomes
``log.1`` (``log.1`` becomes ``log.2``, ... up to ``keep`` old files; the oldest is dropped). Each line::

    {"ts": "2026-12-06T20:31:02.123456Z", "user": "a@hospital.org", "role": "viewer", "action": "search",
     "bundle": "openi", "query": "left pleural effusion", ...}

Query text is kept unless the operator redacts it (then only ``query_sha256``); an uploaded image is never stored,
only ``image_sha256`` of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cxr_explorer.retrieval.bundle.store import atomic

ACTIONS = ("sign_in", "refused", "search", "ground", "upload", "compare", "export", "decide")
DEFAULT_MAX_MB = 64.0
DEFAULT_KEEP = 10


class AuditError(ValueError):
    """A bad audit-log argument or an unreadable log (one line)."""


def digest(data: bytes) -> str:
    """sha256 hex of ``data`` (what the log keeps of an upload or a redacted query)."""
    return hashlib.sha256(data).hexdigest()


def now_iso() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (sorts as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditLog:
    """Where the log lives and how it rotates; ``redact_queries`` keeps a digest of query text, not the text."""

    path: Path
    max_bytes: int = int(DEFAULT_MAX_MB * 1024 * 1024)
    keep: int = DEFAULT_KEEP
    redact_queries: bool = False

    def record(self, user: str, role: str, action: str, **details: Any) -> dict[str, Any]:
        """Append one line and return it. ``query`` is replaced by ``query_sha256`` when redacting; ``image`` (bytes)
        is always replaced by ``image_sha256``."""
        if action not in ACTIONS:
            raise AuditError(f"unknown audit action {action!r}")
        entry: dict[str, Any] = {"ts": now_iso(), "user": user, "role": role, "action": action}
        for key, value in details.items():
            if key == "image":
                entry["image_sha256"] = digest(bytes(value))
            elif key == "query" and self.redact_queries:
                entry["query_sha256"] = digest(str(value).encode("utf-8"))
            else:
                entry[key] = value
        self._append((json.dumps(entry, ensure_ascii=False, sort_keys=False, default=str) + "\n").encode("utf-8"))
        return entry

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.locked(Path(f"{self.path}.lock")):
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(line) > self.max_bytes:
                self._rotate()
            atomic.append_line(self.path, line, mode=0o600)  # who searched what: readable by the operator only

    def _rotate(self) -> None:
        """Shift ``log.N`` to ``log.N+1`` (dropping the oldest past ``keep``) and ``log`` to ``log.1``."""
        oldest = rotated(self.path, self.keep)
        if self.keep < 1:
            self.path.unlink(missing_ok=True)
            return
        oldest.unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            src = rotated(self.path, n)
            if src.exists():
                os.replace(src, rotated(self.path, n + 1))
        os.replace(self.path, rotated(self.path, 1))
        atomic.fsync_dir(self.path.parent)


def rotated(path: Path, n: int) -> Path:
    """The ``n``-th rotated file of ``path`` (``log.1`` is the newest)."""
    return path.with_name(f"{path.name}.{n}")


def read(path: str | Path, since: str | None = None, user: str | None = None) -> Iterator[dict[str, Any]]:
    """The entries of ``path`` and its rotated files, oldest first; ``since`` is an ISO date or time (UTC) and keeps
    entries at or after it; ``user`` keeps one user's entries. A torn or non-JSON line is skipped."""
    p = Path(path)
    files = sorted((f for f in p.parent.glob(f"{p.name}.*") if f.name[len(p.name) + 1:].isdigit()),
                   key=lambda f: -int(f.name[len(p.name) + 1:]))
    if p.exists():
        files.append(p)
    if not files:
        raise AuditError(f"audit log {p} does not exist")
    floor = _since(since) if since else None
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(entry, Mapping):
                    continue
                if floor is not None and str(entry.get("ts", "")) < floor:
                    continue
                if user is not None and str(entry.get("user", "")).lower() != user.lower():
                    continue
                yield dict(entry)


def _since(text: str) -> str:
    """``since`` as the log's timestamp text, so entries compare as strings."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AuditError(f"--since {text!r} is not an ISO date or time (e.g. 2026-12-06 or 2026-12-06T14:00)") \
            from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

"""Collections: named case sets of one bundle, kept BESIDE it (never inside its immutable versions).

``<parent>/<bundle name>.collections/<name>.jsonl`` holds one JSON line per change: ``{"ts_ns", "op": "add" |
"remove", "id", "source", "detail", "by", "session", "seq"}``. ``source`` says how a case came in: ``query`` (the
query text in ``detail``), ``feedback`` (the round), ``selection`` (a map selection), ``curate`` (a check's flags) or
``id`` (typed by hand). Lines are appended like the review file's (:mod:`retrieval.curate.review`): one ``write`` of
all the lines of a change to a file opened ``O_APPEND``, under an exclusive ``flock``, then ``fsync``; two sessions
adding at once never interleave or lose a line, and a line torn by a crash is sealed by the next writer and reported
(never fatal) by the reader. The members are the cases whose latest line is ``add``, in the order they first came
in. Ids are kept as given: a case missing from a rebuilt bundle stays in the collection and is listed as missing.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from cxr_explorer.retrieval.bundle.store.atomic import append_line
from cxr_explorer.retrieval.curate.export import cleaned_manifest
from cxr_explorer.retrieval.engine.filters import QueryError

__all__ = ["MAX_NAME", "SOURCES", "SUFFIX", "Collection", "CollectionError", "Entry", "check_name",
           "collections_dir", "list_collections"]

SUFFIX = ".collections"
MAX_NAME = 64
SOURCES = ("query", "feedback", "selection", "curate", "id")
MAX_DETAIL = 500
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
_BY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,39}$")


class CollectionError(QueryError):
    """A bad collection name, an unknown collection, a bad source or author: one line for the user."""


@dataclass(frozen=True)
class Entry:
    """One change to a collection; ``ts_ns`` then (session, seq) order the changes."""

    ts_ns: int
    op: str
    id: str
    source: str
    detail: str
    by: str
    session: str
    seq: int


def collections_dir(bundle_root: str | os.PathLike[str]) -> Path:
    """``<parent>/<bundle name>.collections``: beside the bundle, never inside it."""
    root = Path(bundle_root).absolute()
    return root.parent / f"{root.name}{SUFFIX}"


def check_name(name: str) -> str:
    """A collection name usable as a file name: 1-64 letters, digits, spaces, ``_.-``, starting with a letter or
    digit (so no path separators, no hidden files, no ``..``)."""
    if not isinstance(name, str) or not name.strip():
        raise CollectionError("a collection needs a name")
    if len(name) > MAX_NAME:
        raise CollectionError(f"collection name is {len(name)} characters long; at most {MAX_NAME}")
    if "/" in name or "\\" in name or os.sep in name:
        raise CollectionError(f"collection name {name!r} contains a path separator")
    if not _NAME.match(name) or name != name.strip():
        raise CollectionError(f"collection name {name!r} must be letters, digits, spaces, '_', '.' or '-', starting "
                              "with a letter or digit")
    return name


def check_by(by: str) -> str:
    """Who adds: 1-40 letters, digits, ``_.@-``."""
    if not isinstance(by, str) or not _BY.match(by):
        raise CollectionError(f"author {by!r} must be 1-40 letters, digits, '_', '.', '@' or '-'")
    return by


def default_author() -> str:
    """The login name when it is a valid author, else ``user``."""
    name = os.environ.get("USER") or os.environ.get("USERNAME") or "user"
    return name if _BY.match(name) else "user"


def list_collections(bundle_root: str | os.PathLike[str]) -> list[str]:
    """Names of the bundle's collections, sorted."""
    folder = collections_dir(bundle_root)
    return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def _parse(line: bytes) -> Entry | None:
    try:
        raw = json.loads(line)
        entry = Entry(**{k: raw[k] for k in Entry.__dataclass_fields__})
    except (ValueError, TypeError, KeyError):
        return None
    return entry if entry.op in ("add", "remove") and isinstance(entry.id, str) else None


class Collection:
    """One named collection of a bundle (the file need not exist yet: it is created on the first add)."""

    def __init__(self, bundle_root: str | os.PathLike[str], name: str, session: str | None = None) -> None:
        self.name = check_name(name)
        self.directory = collections_dir(bundle_root)
        self.session = session or uuid.uuid4().hex[:12]
        self._seq = 0

    @property
    def path(self) -> Path:
        return self.directory / f"{self.name}.jsonl"

    def exists(self) -> bool:
        return self.path.is_file()

    def _write(self, op: str, ids: Sequence[str], source: str, detail: str, by: str) -> list[Entry]:
        if source not in SOURCES:
            raise CollectionError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        by = check_by(by)
        ids = list(dict.fromkeys(str(i) for i in ids if str(i).strip()))
        if not ids:
            return []
        self.directory.mkdir(parents=True, exist_ok=True)
        now = time.time_ns()
        entries = []
        for case_id in ids:
            self._seq += 1
            entries.append(Entry(now, op, case_id, source, str(detail)[:MAX_DETAIL], by, self.session, self._seq))
        data = "".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in entries).encode("utf-8")
        append_line(self.path, data)
        return entries

    def add(self, ids: Sequence[str], source: str, detail: str = "", by: str = "user") -> list[Entry]:
        """Add cases durably (one locked append for all of them); returns the entries written."""
        return self._write("add", ids, source, detail, by)

    def remove(self, ids: Sequence[str], by: str = "user", detail: str = "") -> list[Entry]:
        """Remove cases (an appended ``remove`` line each: the history is kept)."""
        return self._write("remove", ids, "id", detail, by)

    def entries(self) -> tuple[list[Entry], list[str]]:
        """Every readable change, oldest first, and one message per unreadable line (e.g. torn by a crash)."""
        if not self.path.is_file():
            names = sorted(p.stem for p in self.directory.glob("*.jsonl")) if self.directory.is_dir() else []
            have = f"; collections: {', '.join(names)}" if names else "; this bundle has no collections yet"
            raise CollectionError(f"no collection named {self.name!r}{have}")
        out, problems = [], []
        for n, line in enumerate(self.path.read_bytes().split(b"\n"), start=1):
            if not line.strip():
                continue
            entry = _parse(line)
            if entry is None:
                problems.append(f"{self.path.name}:{n}: unreadable line skipped ({len(line)} bytes)")
            else:
                out.append(entry)
        return sorted(out, key=lambda e: (e.ts_ns, e.session, e.seq)), problems

    def members(self) -> dict[str, Entry]:
        """Case id -> the entry that added it (the latest add), in the order the cases first came in."""
        entries, _ = self.entries()
        return current(entries)


def current(entries: Iterable[Entry]) -> dict[str, Entry]:
    """The members after applying ``entries`` in order: latest op per id, first-seen order kept."""
    order: dict[str, int] = {}
    state: dict[str, Entry] = {}
    for e in entries:
        order.setdefault(e.id, len(order))
        if e.op == "add":
            state[e.id] = e
        else:
            state.pop(e.id, None)
    return dict(sorted(state.items(), key=lambda kv: order[kv[0]]))


def split_missing(ids: Iterable[str], bundle_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(present, missing): the collection's ids that the bundle has, and those it no longer has."""
    known = set(bundle_ids)
    present: list[str] = []
    missing: list[str] = []
    for i in ids:
        (present if i in known else missing).append(i)
    return present, missing


def collection_manifest(metadata: pd.DataFrame, metadata_columns: list[str], ids: Iterable[str]) -> pd.DataFrame:
    """The collection's cases present in the bundle as a build corpus (the cleaned-manifest format of
    :func:`retrieval.curate.export.cleaned_manifest`: ``image_path``, ``id``, ``report``, metadata columns)."""
    keep = set(ids)
    others = set(metadata["id"].astype(str)) - keep
    return cleaned_manifest(metadata, metadata_columns, others)

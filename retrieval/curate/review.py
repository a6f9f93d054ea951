"""The review file: curators' ok / wrong / exclude decisions, kept BESIDE a bundle (never inside it).

``<bundle>.review/<curator>.jsonl`` next to the bundle folder holds one JSON line per decision. A decision is
appended with one ``write`` to a file opened ``O_APPEND``, under an exclusive ``flock`` and followed by ``fsync``,
so concurrent sessions (even of the same curator) never interleave or lose a line and an acknowledged decision
survives a ``kill -9``. A line torn by a crash mid-write is sealed with a newline by the next writer and reported
(never fatal) by the reader. The current state is the latest decision per (check, case id) over every curator's
file, so several curators' files merge by being in the same folder (:func:`merge_files` imports other folders').
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from cxr_explorer.retrieval.bundle.store import atomic

SUFFIX = ".review"
DECISIONS = ("ok", "wrong", "exclude", "clear")
"""``clear`` withdraws an earlier decision."""
EFFECTS = {
    "ok": "a false alarm: the case stays in the cleaned manifest; listed as ok in the decision list",
    "wrong": "a real problem to fix at the source (e.g. its label or report): the case stays in the cleaned "
             "manifest and is listed as wrong, with your note, in the decision list",
    "exclude": "left out of the cleaned manifest and listed, with your note, in the exclusion and decision lists",
}
"""What each decision does to the exports (the Curate page shows these lines)."""
CURATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
"""A curator name; match it with ``fullmatch`` (``$`` would accept a trailing newline)."""
FIELD_TYPES: dict[str, type] = {"ts_ns": int, "curator": str, "session": str, "seq": int, "check": str, "id": str,
                                "decision": str, "note": str}
"""What each field of a review line must hold (``note`` may be absent)."""


class ReviewError(ValueError):
    """A bad curator name or decision (user input)."""


@dataclass(frozen=True)
class Decision:
    """One curator decision on one case of one check; ``ts_ns`` orders decisions (then curator, session, seq)."""

    ts_ns: int
    curator: str
    session: str
    seq: int
    check: str
    id: str
    decision: str
    note: str = ""

    def key(self) -> tuple[int, str, str, int]:
        return (self.ts_ns, self.curator, self.session, self.seq)


def review_dir(bundle_root: str | os.PathLike[str]) -> Path:
    """``<parent>/<bundle name>.review``: beside the bundle, never inside it."""
    root = Path(bundle_root).absolute()
    return root.parent / f"{root.name}{SUFFIX}"


def check_curator(name: str) -> str:
    """A curator name usable as a file name: letters, digits, ``_.-``, at most 40 characters."""
    if not isinstance(name, str) or not CURATOR.fullmatch(name):
        raise ReviewError(f"curator name {name!r} must be 1-40 letters, digits, '_', '.' or '-' (starting with a "
                          "letter or digit)")
    return name


class ReviewLog:
    """One curator's append-only decision log in ``directory`` (one instance per app session)."""

    def __init__(self, directory: str | os.PathLike[str], curator: str, session: str | None = None) -> None:
        self.directory = Path(directory)
        self.curator = check_curator(curator)
        self.session = session or uuid.uuid4().hex[:12]
        self._seq = 0

    @property
    def path(self) -> Path:
        return self.directory / f"{self.curator}.jsonl"

    def append(self, check: str, case_id: str, decision: str, note: str = "") -> Decision:
        """Record a decision durably (returns once it is on disk)."""
        if decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        d = Decision(time.time_ns(), self.curator, self.session, self._seq, str(check), str(case_id), decision,
                     str(note))
        atomic.append_line(self.path, (json.dumps(asdict(d), ensure_ascii=False) + "\n").encode("utf-8"))
        return d


def parse_line(line: bytes) -> Decision:
    """One review line as a :class:`Decision`; ``ValueError`` naming what is wrong when the line is not one
    (not JSON, a missing or mistyped field, an unknown decision, a bad curator name)."""
    try:
        raw = json.loads(line)
    except ValueError:
        raise ValueError("not JSON (e.g. a write cut off by a crash)") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    for name, kind in FIELD_TYPES.items():
        if name not in raw and name != "note":
            raise ValueError(f"no field {name!r}")
        value = raw.get(name, "")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"field {name!r} is not {'an integer' if kind is int else 'text'}")
    if raw["decision"] not in DECISIONS:
        raise ValueError(f"unknown decision {str(raw['decision'])[:20]!r}")
    if not CURATOR.fullmatch(raw["curator"]):
        raise ValueError("bad curator name")
    if raw["ts_ns"] < 0 or raw["seq"] < 0:
        raise ValueError("negative ts_ns or seq")
    return Decision(**{name: raw.get(name, "") for name in FIELD_TYPES})


def read_file(path: Path) -> tuple[list[Decision], list[str]]:
    """Every valid decision of one log file and one message per line skipped (torn by a crash, edited by hand,
    mistyped): ``<file>:<line>: skipped: <why>``. Never raises for a line's content."""
    decisions, problems = [], []
    for n, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            decisions.append(parse_line(line))
        except ValueError as exc:
            problems.append(f"{path.name}:{n}: skipped: {exc} ({len(line)} bytes)")
    return decisions, problems


def read_decisions(directory: str | os.PathLike[str]) -> tuple[list[Decision], list[str]]:
    """All decisions of every curator's file in ``directory`` (empty when it does not exist), oldest first."""
    folder = Path(directory)
    decisions: list[Decision] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        d, p = read_file(path)
        decisions += d
        problems += p
    return sorted(decisions, key=Decision.key), problems


def current(decisions: Iterable[Decision]) -> dict[tuple[str, str], Decision]:
    """The latest decision per (check, case id); a ``clear`` removes the entry."""
    out: dict[tuple[str, str], Decision] = {}
    for d in sorted(decisions, key=Decision.key):
        if d.decision == "clear":
            out.pop((d.check, d.id), None)
        else:
            out[(d.check, d.id)] = d
    return out


def conflicts(decisions: Iterable[Decision]) -> dict[tuple[str, str], dict[str, Decision]]:
    """(check, case id) -> curator -> that curator's latest decision, only where curators' latest decisions
    differ (a curator's ``clear`` withdraws theirs)."""
    mine: dict[tuple[str, str], dict[str, Decision]] = {}
    for d in sorted(decisions, key=Decision.key):
        per = mine.setdefault((d.check, d.id), {})
        if d.decision == "clear":
            per.pop(d.curator, None)
        else:
            per[d.curator] = d
    return {key: per for key, per in mine.items() if len({d.decision for d in per.values()}) > 1}


def excluded(state: dict[tuple[str, str], Decision]) -> dict[str, Decision]:
    """Case id -> the decision that excludes it (a case is excluded when any check's current decision says so)."""
    out: dict[str, Decision] = {}
    for d in state.values():
        if d.decision == "exclude" and (d.id not in out or d.key() > out[d.id].key()):
            out[d.id] = d
    return out


def merge_files(sources: Iterable[str | os.PathLike[str]], directory: str | os.PathLike[str]
                ) -> tuple[int, list[str]]:
    """Import other review files (or folders of them) into ``directory``: each valid decision not already present
    is appended to the file of the same curator name; lines that are not valid decisions are left behind and
    reported. Idempotent; returns (the number of decisions added, one message per line left behind)."""
    dest = Path(directory)
    dest.mkdir(parents=True, exist_ok=True)
    files = [f for s in map(Path, sources) for f in (sorted(s.glob("*.jsonl")) if s.is_dir() else [s])]
    added, problems = 0, []
    for src in files:
        if not CURATOR.fullmatch(src.stem):
            problems.append(f"{src.name}: skipped: the file name is not a curator name")
            continue
        have = {d.key() for d in read_file(dest / src.name)[0]} if (dest / src.name).exists() else set()
        decisions, bad = read_file(src)
        problems += [f"{src.parent.name}/{p}" for p in bad]
        for d in decisions:
            if d.key() not in have:
                atomic.append_line(dest / src.name, (json.dumps(asdict(d), ensure_ascii=False) + "\n").encode("utf-8"))
                have.add(d.key())
                added += 1
    return added, problems

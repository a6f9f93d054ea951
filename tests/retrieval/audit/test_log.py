"""The audit log: one JSON line per action, concurrent writers never interleave, rotation by size keeps ``keep`` old
files, redaction keeps a digest, an upload is never stored."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest

from cxr_explorer.retrieval.audit.log import AuditError, AuditLog, read, rotated


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_line_per_action_with_identity_and_time(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record("a@h.org", "viewer", "search", bundle="b", query="left effusion", k=20)
    [entry] = _lines(log.path)
    assert entry["user"] == "a@h.org" and entry["role"] == "viewer" and entry["action"] == "search"
    assert entry["query"] == "left effusion" and entry["k"] == 20 and entry["ts"].endswith("Z")


def test_upload_kept_as_digest_only_and_queries_redacted_on_request(tmp_path: Path) -> None:
    image = b"\x89PNG fake image bytes"
    log = AuditLog(tmp_path / "audit.jsonl", redact_queries=True)
    log.record("a@h.org", "viewer", "upload", image=image, query="secret phrase")
    raw = log.path.read_bytes()
    assert image not in raw and b"secret phrase" not in raw
    [entry] = _lines(log.path)
    assert entry["image_sha256"] == hashlib.sha256(image).hexdigest()
    assert entry["query_sha256"] == hashlib.sha256(b"secret phrase").hexdigest()


def test_unknown_action_refused(tmp_path: Path) -> None:
    with pytest.raises(AuditError):
        AuditLog(tmp_path / "a.jsonl").record("u", "viewer", "delete_everything")


def test_rotation_by_size_keeps_the_newest_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=400, keep=2)
    for i in range(40):
        log.record("u@h.org", "viewer", "search", query=f"q{i:03d}")
    assert log.path.stat().st_size <= 400
    assert rotated(log.path, 1).exists() and rotated(log.path, 2).exists() and not rotated(log.path, 3).exists()
    entries = list(read(log.path))
    queries = [e["query"] for e in entries]
    assert queries == sorted(queries) and queries[-1] == "q039"  # oldest first, the newest kept, no gap inside


def _writer(path: str, n: int, who: str) -> None:
    log = AuditLog(Path(path), max_bytes=4000, keep=50)
    for i in range(n):
        log.record(who, "viewer", "search", query="x" * 50 + str(i))


def test_concurrent_writers_lose_and_tear_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), 60, f"user{k}")) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    entries = list(read(path))
    assert len(entries) == 180
    assert {e["user"] for e in entries} == {"user0", "user1", "user2"}


def test_read_filters_by_user_and_since(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"ts": "2026-01-01T10:00:00.000000Z", "user": "a@h.org", "action": "search"}\n'
                    '{"ts": "2026-03-01T10:00:00.000000Z", "user": "b@h.org", "action": "export"}\n'
                    'torn line without end\n'
                    '{"ts": "2026-05-01T10:00:00.000000Z", "user": "A@h.org", "action": "decide"}\n')
    assert [e["action"] for e in read(path, user="a@h.org")] == ["search", "decide"]
    assert [e["action"] for e in read(path, since="2026-02-01")] == ["export", "decide"]
    with pytest.raises(AuditError, match="not an ISO date"):
        list(read(path, since="last tuesday"))
    with pytest.raises(AuditError, match="does not exist"):
        list(read(tmp_path / "missing.jsonl"))

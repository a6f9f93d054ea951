"""The review file: beside the bundle, durable across kill -9, no lost decision under concurrent sessions,
mergeable across curators; the exports are what the build reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cxr_explorer.index.corpus import CorpusOptions, read_corpus
from cxr_explorer.retrieval.curate.export import cleaned_manifest, decision_list, exclusion_list
from cxr_explorer.retrieval.curate.review import (
    ReviewError,
    ReviewLog,
    conflicts,
    current,
    excluded,
    merge_files,
    read_decisions,
    review_dir,
)
from tests.helpers.paths import REPO

WRITER = """
import sys
from cxr_explorer.retrieval.curate.review import ReviewLog
log = ReviewLog(sys.argv[1], sys.argv[2], session=sys.argv[3])
for i in range(int(sys.argv[4])):
    log.append("labels", f"{sys.argv[3]}-{i}", "exclude" if i % 3 == 0 else "ok")
    print(i, flush=True)
"""


def _writer(directory: Path, curator: str, session: str, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(directory), curator, session, str(n)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_review_dir_is_beside_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "corpus" / "bundle"
    assert review_dir(bundle) == tmp_path / "corpus" / "bundle.review"
    assert bundle not in review_dir(bundle).parents


def test_latest_decision_wins_and_clear_withdraws(tmp_path: Path) -> None:
    log = ReviewLog(tmp_path, "ana")
    log.append("labels", "a", "wrong")
    log.append("labels", "a", "exclude")
    log.append("outliers", "b", "exclude")
    log.append("outliers", "b", "clear")
    log.append("mismatch", "c", "ok", note="checked the report")
    state = current(read_decisions(tmp_path)[0])
    assert {k: d.decision for k, d in state.items()} == {("labels", "a"): "exclude", ("mismatch", "c"): "ok"}
    assert set(excluded(state)) == {"a"}
    assert state[("mismatch", "c")].note == "checked the report"


def test_bad_curator_and_decision(tmp_path: Path) -> None:
    with pytest.raises(ReviewError, match="curator name"):
        ReviewLog(tmp_path, "../etc/passwd")
    with pytest.raises(ReviewError, match="decision must be one of"):
        ReviewLog(tmp_path, "ana").append("labels", "a", "delete")


@pytest.mark.slow  # two fresh Python processes
def test_two_concurrent_sessions_lose_no_decision(tmp_path: Path) -> None:
    """Two processes of the same curator append to the same file at once: every decision is there, intact."""
    procs = [_writer(tmp_path, "ana", s, 300) for s in ("s1", "s2")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    decisions, problems = read_decisions(tmp_path)
    assert problems == []
    assert len(decisions) == 600 and len({(d.session, d.id) for d in decisions}) == 600
    assert [p.name for p in tmp_path.iterdir()] == ["ana.jsonl"]


def test_acknowledged_decisions_survive_kill_9(tmp_path: Path) -> None:
    proc = _writer(tmp_path, "ana", "s1", 100_000)
    acked = -1
    assert proc.stdout is not None
    for line in proc.stdout:
        acked = int(line)
        if acked >= 200:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    decisions, problems = read_decisions(tmp_path)
    ids = {d.id for d in decisions}
    assert all(f"s1-{i}" in ids for i in range(acked + 1))
    assert len(problems) <= 1  # at most the line being written when killed
    ReviewLog(tmp_path, "ana").append("labels", "after", "ok")  # the log keeps working
    assert "after" in {d.id for d in read_decisions(tmp_path)[0]}


def test_a_torn_line_is_sealed_and_reported(tmp_path: Path) -> None:
    log = ReviewLog(tmp_path, "ana")
    log.append("labels", "a", "exclude")
    with open(log.path, "ab") as fh:
        fh.write(b'{"ts_ns": 1, "curator": "ana", "ses')  # a writer killed mid-line
    log.append("labels", "b", "exclude")
    decisions, problems = read_decisions(tmp_path)
    assert [d.id for d in decisions] == ["a", "b"]
    assert len(problems) == 1 and "ana.jsonl:2: skipped: not JSON" in problems[0]


def test_curators_files_merge(tmp_path: Path) -> None:
    a, b = tmp_path / "a.review", tmp_path / "b.review"
    ReviewLog(a, "ana").append("labels", "x", "exclude")
    ReviewLog(b, "ben").append("labels", "y", "exclude")
    ReviewLog(b, "ben").append("labels", "x", "ok")  # later than ana's exclude of x
    assert merge_files([b], a) == (2, [])
    assert merge_files([b / "ben.jsonl"], a) == (0, [])  # idempotent
    state = current(read_decisions(a)[0])
    assert set(excluded(state)) == {"y"} and state[("labels", "x")].curator == "ben"


@pytest.mark.parametrize("name", ["alice\n", "alice\r", "alice\n\n", " alice", "alice/x", "a" * 41])
def test_curator_names_are_matched_in_full(tmp_path: Path, name: str) -> None:
    with pytest.raises(ReviewError, match="curator name"):
        ReviewLog(tmp_path, name)
    assert not list(tmp_path.iterdir())


BAD_LINES = [
    (b'{"ts_ns": "1", "curator": "ana", "session": "s", "seq": 1, "check": "labels", "id": "x", '
     b'"decision": "ok"}', "field 'ts_ns' is not an integer"),
    (b'{"ts_ns": 1, "curator": "ana", "session": "s", "seq": true, "check": "labels", "id": "x", '
     b'"decision": "ok"}', "field 'seq' is not an integer"),
    (b'{"ts_ns": 1, "curator": "ana", "session": "s", "seq": 1, "check": "labels", "id": 5, "decision": "ok"}',
     "field 'id' is not text"),
    (b'{"ts_ns": 1, "curator": "ana", "session": "s", "seq": 1, "check": "labels", "id": "x", "decision": "ok", '
     b'"note": null}', "field 'note' is not text"),
    (b'{"ts_ns": 1, "curator": "ana", "session": "s", "seq": 1, "check": "labels", "decision": "ok"}',
     "no field 'id'"),
    (b'{"ts_ns": 1, "curator": "al\\nice", "session": "s", "seq": 1, "check": "labels", "id": "x", '
     b'"decision": "ok"}', "bad curator name"),
    (b'[1, 2]', "not a JSON object"),
    (b'{"ts_ns": 1, "curator": "ana", "session": "s", "seq": 1, "check": "labels", "id": "x", '
     b'"decision": "delete"}', "unknown decision"),
]


@pytest.mark.parametrize(("line", "why"), BAD_LINES)
def test_each_line_is_validated_on_read_and_a_bad_one_is_skipped_and_reported(tmp_path: Path, line: bytes,
                                                                              why: str) -> None:
    log = ReviewLog(tmp_path, "ana")
    log.append("labels", "a", "exclude")
    with open(log.path, "ab") as fh:
        fh.write(line + b"\n")
    log.append("labels", "b", "ok")
    decisions, problems = read_decisions(tmp_path)
    assert [d.id for d in decisions] == ["a", "b"]  # sorting the rest never meets the bad line
    assert len(problems) == 1 and problems[0].startswith("ana.jsonl:2: skipped: ") and why in problems[0]
    assert set(current(decisions)) == {("labels", "a"), ("labels", "b")}


def test_merging_drops_bad_lines_and_reports_them(tmp_path: Path) -> None:
    a, b = tmp_path / "a.review", tmp_path / "b.review"
    ReviewLog(b, "ben").append("labels", "y", "exclude")
    with open(b / "ben.jsonl", "ab") as fh:
        fh.write(BAD_LINES[0][0] + b"\n")
    (b / "bad name.jsonl").write_bytes(b"")
    added, problems = merge_files([b], a)
    assert added == 1 and len(problems) == 2
    assert any("b.review/ben.jsonl:2: skipped: field 'ts_ns'" in p for p in problems)
    assert any("bad name.jsonl" in p for p in problems)
    assert read_decisions(a)[1] == [] and [p.name for p in a.iterdir()] == ["ben.jsonl"]


def test_cleaned_manifest_is_read_by_the_build(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        (images / f"c{i}.png").write_bytes(b"")
    meta = pd.DataFrame({"id": [f"c{i}" for i in range(4)], "path": [f"images/c{i}.png" for i in range(4)],
                         "image_abspath": [str(images / f"c{i}.png") for i in range(4)],
                         "report": ["a.", "b.", "", "d."], "labels": ["A", "B|C", "", "A"],
                         "split": ["train", "test", "train", "train"]})
    log = ReviewLog(tmp_path / "bundle.review", "ana")
    log.append("labels", "c1", "exclude", note="wrong patient")
    log.append("outliers", "gone", "exclude")
    ex = excluded(current(read_decisions(tmp_path / "bundle.review")[0]))
    manifest = cleaned_manifest(meta, ["labels", "split"], set(ex))
    csv = tmp_path / "clean.csv"
    manifest.to_csv(csv, index=False)
    corpus = read_corpus(csv, CorpusOptions(id_col="id", text_cols=("report",)))
    assert [it.id for it in corpus.items] == ["c0", "c2", "c3"]
    assert [it.report for it in corpus.items] == ["a.", "", "d."]
    assert corpus.items[0].metadata == {"labels": "A", "split": "train"}
    assert corpus.items[1].abspath == str(images / "c2.png")
    table = exclusion_list(meta, ex)
    assert table["id"].tolist() == ["c1", "gone"] and table["in_bundle"].tolist() == [True, False]
    assert table.loc[0, "note"] == "wrong patient" and table.loc[0, "path"] == "images/c1.png"


def test_conflicts_and_the_decision_list(tmp_path: Path) -> None:
    ana, ben = ReviewLog(tmp_path, "ana"), ReviewLog(tmp_path, "ben")
    ana.append("labels", "c0", "exclude", note="duplicate")
    ben.append("labels", "c0", "ok")
    ana.append("labels", "c1", "wrong", note="label should be B")
    ben.append("labels", "c1", "wrong")
    ana.append("mismatch", "c2", "ok")
    decisions = read_decisions(tmp_path)[0]
    found = conflicts(decisions)
    assert set(found) == {("labels", "c0")} and {c: d.decision for c, d in found[("labels", "c0")].items()} == {
        "ana": "exclude", "ben": "ok"}
    meta = pd.DataFrame({"id": ["c0", "c1", "c2"], "path": ["a.png", "b.png", "c.png"]})
    table = decision_list(meta, current(decisions), found)
    assert table[["check", "id", "decision", "curator", "conflict"]].values.tolist() == [
        ["labels", "c0", "ok", "ben", "ana: exclude"], ["labels", "c1", "wrong", "ben", ""],
        ["mismatch", "c2", "ok", "ana", ""]]
    ben.append("labels", "c0", "clear")  # ben withdraws his: no conflict left
    assert conflicts(read_decisions(tmp_path)[0]) == {}

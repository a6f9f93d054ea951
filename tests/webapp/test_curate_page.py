"""The Curate page headless (AppTest): worst cases with thumbnails, decisions saved beside the bundle and still
there after a restart, state in the URL, the checks that need a column say so, the check list is the registry's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_explorer.retrieval.curate.review import ReviewLog, current, read_decisions, review_dir
from tests.helpers import curate_bundle
from tests.helpers.paths import APP_SCRIPT

APP = str(APP_SCRIPT)


@pytest.fixture()
def reviews(env: None, bundle_dir: Path) -> Iterator[Path]:
    """The bundle's review folder, removed after the test (the module's other tests start with none)."""
    folder = review_dir(bundle_dir)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/curate/page.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def first_case(at: AppTest) -> str:
    """The id of the first case card."""
    return next(str(t.value) for t in at.text if str(t.value).startswith("#")).split()[1]


def decisions(at: AppTest) -> list[str]:
    return [str(t.value) for t in at.text if str(t.value).startswith("decision:")]


def test_lists_worst_cases_and_saves_decisions_beside_the_bundle(env: None, bundle_dir: Path) -> None:
    files_before = sorted(p.name for p in bundle_dir.iterdir())
    at = open_page()
    assert any("Research use only" in str(c.value) for c in at.caption)
    cards = [str(t.value) for t in at.text if str(t.value).startswith("#")]
    assert len(at.image) >= 7 and cards[0].startswith("#1  ")  # ids are plain text, not markdown
    assert all(b.disabled for b in at.button if b.label in ("ok", "wrong", "exclude"))
    assert "c_check" not in at.query_params  # the default check: left out of the URL like every default
    first = cards[0].split()[1]
    at.text_input(key="c_curator").set_value("ana").run()
    assert at.query_params["c_curator"] == "ana"
    next(b for b in at.button if b.label == "exclude").click().run()
    assert not at.exception
    assert decisions(at)[0] == "decision: EXCLUDE by ana"
    saved, problems = read_decisions(review_dir(bundle_dir))
    assert [(d.check, d.id, d.decision, d.curator) for d in saved] == [("mismatch", first, "exclude", "ana")]
    assert problems == [] and sorted(p.name for p in bundle_dir.iterdir()) == files_before
    restarted = open_page()  # a new session (as after a restart) reads the same file
    assert decisions(restarted)[0] == "decision: EXCLUDE by ana"
    assert any("1 case(s) excluded by 1 curator(s)" in str(t.value) for t in restarted.text)


def test_checks_that_need_a_column(env: None) -> None:
    at = open_page()
    at.selectbox(key="c_split").set_value("(none)").run()
    at.selectbox(key="c_check").set_value("leakage_split").run()
    assert any("Choose a split column" in str(i.value) for i in at.info)
    at.selectbox(key="c_split").set_value("view").run()
    assert not at.exception and at.query_params["c_split"] == "view"
    at.selectbox(key="c_check").set_value("labels").run()
    assert at.query_params["c_check"] == "labels" and at.session_state["c_label"] == "labels"
    assert any(str(t.value).startswith("labels: ") for t in at.text)


def test_bad_curator_name_is_refused(env: None) -> None:
    at = open_page()
    at.text_input(key="c_curator").set_value("../../etc").run()
    assert any("curator name may only hold" in str(e.value) for e in at.error)
    assert all(b.disabled for b in at.button if b.label == "exclude")


def test_the_check_list_is_the_registry(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page()
    titles = ["Report-image mismatch", "Label issues", "Outliers", "Pixel checks", "Leakage across splits"]
    assert list(at.selectbox(key="c_check").options) == titles  # a check that needs a second bundle is not offered
    spec = curate_bundle.register_parity(monkeypatch)
    at = open_page()
    assert list(at.selectbox(key="c_check").options) == [*titles, spec.title]
    at.selectbox(key="c_check").set_value(spec.name).run()
    assert not at.exception and at.query_params["c_check"] == spec.name
    assert any(str(t.value) == "Thresholds: modulus = 2" for t in at.text)
    assert [str(t.value) for t in at.text if str(t.value).startswith("parity: ")][:2] == ["parity: 0", "parity: 0"]


def test_names_and_decisions_are_explained(env: None) -> None:
    at = open_page()
    lines = "\n".join(str(t.value) for t in at.text)
    for name in ("rank_image_to_report: ", "k: how many nearest", "max_rank: flagged when", "exclude: left out of"):
        assert name in lines, name
    at.selectbox(key="c_check").set_value("outliers").run()
    lines = "\n".join(str(t.value) for t in at.text)
    assert "robust_z: how unusual" in lines and "wrong: a real problem" in lines


def test_a_note_is_saved_with_the_decision_and_conflicts_are_shown(reviews: Path) -> None:
    at = open_page()
    first = first_case(at)
    ReviewLog(reviews, "ben").append("mismatch", first, "ok")
    at.text_input(key="c_curator").set_value("ana").run()
    at.text_input(key=f"c_note_mismatch_{first}").set_value("report of another patient").run()
    next(b for b in at.button if b.label == "wrong").click().run()
    assert not at.exception
    saved = current(read_decisions(reviews)[0])[("mismatch", first)]
    assert (saved.curator, saved.decision, saved.note) == ("ana", "wrong", "report of another patient")
    shown = decisions(at)[0]
    assert shown.startswith("decision: WRONG by ana (note: report of another patient)")
    assert "conflict: ben: ok" in shown
    assert any("1 case(s) with conflicting decisions" in str(w.value) for w in at.warning)


def test_a_bad_review_line_is_skipped_and_reported_never_a_crash(reviews: Path) -> None:
    at = open_page()
    first = first_case(at)
    ReviewLog(reviews, "ana").append("mismatch", first, "exclude")
    with open(reviews / "ana.jsonl", "ab") as fh:
        fh.write(b'{"ts_ns": "1", "curator": "ana", "session": "s", "seq": 1, "check": "mismatch", '
                 b'"id": "x", "decision": "ok"}\n')
    at = open_page()
    assert decisions(at)[0] == "decision: EXCLUDE by ana"
    assert any("1 bad line(s) in the review files were skipped" in str(w.value) for w in at.warning)
    assert any("ana.jsonl:2: skipped: field 'ts_ns' is not an integer" in str(t.value) for t in at.text)


def test_a_curator_name_with_a_trailing_newline_is_refused(env: None, bundle_dir: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["c_curator"] = "alice\n"
    at.run()
    at.switch_page("views/curate/page.py").run()
    assert not at.exception
    at.text_input(key="c_curator").set_value("alice\n").run()
    assert any("curator name may only hold" in str(e.value) for e in at.error)
    assert all(b.disabled for b in at.button if b.label == "exclude")
    assert not (review_dir(bundle_dir) / "alice\n.jsonl").exists()

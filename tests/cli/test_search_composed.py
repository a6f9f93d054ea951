"""``cxr-explorer search`` with composed queries, feedback marks and rank by a finding, run in-process on the small
engine bundle (tiny-random model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cxr_explorer.retrieval.engine.engine
from cxr_explorer.cli import main
from tests.helpers.synthetic import tiny_model


@pytest.fixture(autouse=True)
def cached_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine.open loads the bundle's model by name; hand it the already loaded tiny model instead."""
    monkeypatch.setattr(cxr_explorer.retrieval.engine.engine, "load_model", lambda *a, **k: tiny_model())


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_text_not_with_exclusion_json(engine_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--text", "pleural effusion", "--not",
                           "pneumothorax", "--exclude-above", "-1", "--k", "5", "--json")
    result = json.loads(out)
    assert code == 0 and result["hits"] == [] and result["dropped"]  # every case is above -1: all dropped
    assert all(d["part"].startswith('not text "pneumothorax"') for d in result["dropped"])
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--text", "pleural effusion", "--not",
                           "pneumothorax", "--weight", "0.5", "--k", "5", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and len(hits) == 5
    assert [p["part"] for p in hits[0]["parts"]] == ['text "pleural effusion"', 'not text "pneumothorax" x0.5']


def test_case_plus_text_table_and_feedback(engine_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--id", "case0", "--text", "cardiomegaly",
                           "--weight", "0.5", "--k", "3")
    assert code == 0 and "why (cosine with each part" in out and 'id "case0"' in out
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--text", "pleural effusion", "--relevant", "case3",
                           "--not-relevant", "case1", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["id"] == "case3" and hits[0]["pinned"] and "case1" not in {h["id"] for h in hits}


def test_rank_by_finding(engine_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--text", "pleural effusion", "--rank-by",
                           "cardiomegaly", "--k", "7", "--json")
    margins = [h["margin"] for h in json.loads(out)["hits"]]
    assert code == 0 and margins == sorted(margins, reverse=True) and len(margins) == 7
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--text", "pleural effusion", "--rank-by",
                           "cardiomegaly", "--min-margin", str(margins[2]), "--json")
    assert code == 0 and all(h["margin"] >= margins[2] for h in json.loads(out)["hits"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--text", "effusion", "--not", "Effusion"], "contradictory"),
        (["--text", "effusion", "--weight", "0"], "above 0"),
        (["--text", "effusion", "--weight", "-2"], "above 0"),
        (["--text", "effusion", "--weight", "nan"], "finite"),
        ([arg for i in range(50) for arg in ("--text", f"finding {i}")], "at most 16 parts"),
        (["--not", "effusion"], "positive part"),
        (["--text", "effusion", "--min-margin", "0.1"], "--rank-by"),
        (["--text", "effusion", "--relevant", "case1", "--not-relevant", "case1"], "both relevant"),
        (["--text", "effusion", "--relevant", "nope"], "nope"),
        (["--weight", "2", "--text", "effusion"], "--weight follows"),
        ([], "give a query"),
    ],
)
def test_bad_composed_input_is_one_line(engine_bundle: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                        message: str) -> None:
    try:
        code, out, err = run_cli(capsys, "search", str(engine_bundle), *argv)
    except SystemExit as exc:  # argparse's own errors: usage line + one message
        code, (out, err) = int(exc.code or 0), capsys.readouterr()
        assert code == 2 and message in err.strip().splitlines()[-1]
        return
    lines = err.strip().splitlines()
    assert code != 0 and out == "" and len(lines) == 1 and message in lines[0], lines

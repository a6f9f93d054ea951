"""``cxr-explorer collection`` in-process on a copy of the small engine bundle: add / show / remove / list, a
search filtered by ``--where collection=NAME``, and an export that ``cxr-explorer build`` reads back as a corpus."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cxr_explorer.retrieval.engine.engine
from cxr_explorer.cli import main
from cxr_explorer.retrieval.bundle.reader import Bundle
from tests.helpers.synthetic import tiny_model


@pytest.fixture(autouse=True)
def cached_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cxr_explorer.retrieval.engine.engine, "load_model", lambda *a, **k: tiny_model())


@pytest.fixture
def bundle(engine_bundle: Path, tmp_path: Path) -> Path:
    """A bundle of its own (its collections folder is written beside it)."""
    shutil.copytree(engine_bundle, tmp_path / "bundle")
    return tmp_path / "bundle"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_show_remove_list_and_where(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = str(bundle)
    assert cli(capsys, "collection", "add", b, "set1", "--id", "case1", "--id", "case3", "--by", "ana")[0] == 0
    code, out, _ = cli(capsys, "collection", "add", b, "set1", "--text", "pleural effusion", "--k", "2")
    assert code == 0 and "added 2 hit(s)" in out
    code, out, _ = cli(capsys, "collection", "show", b, "set1", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["missing"] == [] and shown["cases"][0] == {**shown["cases"][0], "id": "case1",
                                                                          "source": "id", "by": "ana"}
    assert any(c["source"] == "query" and "pleural effusion" in c["detail"] for c in shown["cases"])
    n = len(shown["cases"])
    code, out, _ = cli(capsys, "collection", "remove", b, "set1", "--id", "case1")
    assert code == 0 and f"({n - 1} left)" in out
    code, out, _ = cli(capsys, "collection", "list", b)
    assert code == 0 and out.strip() == f"set1\t{n - 1} case(s)"
    code, out, _ = cli(capsys, "search", b, "--text", "effusion", "--where", "collection=set1", "--k", "7", "--json")
    ids = {h["id"] for h in json.loads(out)}
    assert code == 0 and "case1" not in ids and "case3" in ids and len(ids) == n - 1
    assert not list(bundle.glob("**/*.jsonl"))  # never inside the bundle


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "{b}", "a/b", "--id", "case1"], "path separator"),
        (["add", "{b}", "x" * 10_000, "--id", "case1"], "at most 64"),
        (["add", "{b}", "set", "--id", "nope"], "no case with id 'nope'"),
        (["add", "{b}", "set"], "needs --id"),
        (["show", "{b}", "none"], "no collection named 'none'"),
        (["show", "{b}"], "needs a collection name"),
        (["export", "{b}", "none", "--out", "x.csv"], "no collection named"),
        (["add", "{b}", "set", "--id", "case1", "--by", "a b"], "author"),
    ],
)
def test_bad_input_is_one_line(bundle: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                               message: str) -> None:
    code, out, err = cli(capsys, "collection", *[a.format(b=bundle) for a in argv])
    lines = err.strip().splitlines()
    assert code != 0 and out == "" and len(lines) == 1 and message in lines[0], lines


def test_export_rebuilds_as_a_sub_bundle_and_lists_missing(bundle: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           build: Callable[..., Any]) -> None:
    b = str(bundle)
    assert cli(capsys, "collection", "add", b, "sub", "--id", "case0", "--id", "case3", "--id", "case5")[0] == 0
    log = bundle.parent / "bundle.collections" / "sub.jsonl"
    with open(log, "a", encoding="utf-8") as fh:  # a case a rebuilt bundle no longer has
        fh.write(json.dumps({"ts_ns": 2**62, "op": "add", "id": "gone", "source": "id", "detail": "", "by": "ana",
                             "session": "s", "seq": 1}) + "\n")
    code, out, _ = cli(capsys, "collection", "show", b, "sub")
    assert code == 0 and "1 missing from this bundle" in out and "gone" in out and "MISSING" in out
    csv = tmp_path / "sub.csv"
    code, out, err = cli(capsys, "collection", "export", b, "sub", "--out", str(csv))
    assert code == 0 and "gone" in err and "left out of the manifest" in err
    assert (tmp_path / "sub.csv.ids.txt").read_text().split() == ["case0", "case3", "case5", "gone"]
    from cxr_explorer.index.corpus import CorpusOptions

    build(csv, tmp_path / "sub_bundle", corpus_options=CorpusOptions(id_col="id", text_cols=("report",)))
    with Bundle.open(tmp_path / "sub_bundle") as sub:
        assert sorted(sub.metadata["id"].astype(str)) == ["case0", "case3", "case5"]
        assert set(sub.metadata_columns) >= {"sex", "labels"}

"""Tests for ``cxr-explorer search`` and ``cxr-explorer ground``, run in-process on a small tiny-random bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import cxr_explorer.retrieval.engine.engine
from cxr_explorer.cli import main
from tests.helpers.bundles import ENGINE_CASES
from tests.helpers.synthetic import tiny_model

REPORTS, SIZES = ENGINE_CASES.reports, ENGINE_CASES.sizes


@pytest.fixture(autouse=True)
def cached_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine.open loads the bundle's model by name; hand it the already loaded tiny model instead."""

    def fake_load(name: str, weights_dir: Any = None, device: str = "auto", precision: str = "fp32") -> Any:
        assert name == "tiny-random" and weights_dir is None
        assert precision == "fp32"  # these bundles record no precision: queried in fp32 (query_precision)
        return tiny_model()

    monkeypatch.setattr(cxr_explorer.retrieval.engine.engine, "load_model", fake_load)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_json_fields(engine_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--text", "pleural effusion", "--k", "4", "--json")
    assert code == 0
    hits = json.loads(out)
    assert len(hits) == 4 and [h["rank"] for h in hits] == [1, 2, 3, 4]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    for h in hits:
        assert {"id", "score", "rank", "path", "report", "matched_text", "target", "metadata"} <= set(h)
        assert h["sex"] == h["metadata"]["sex"] and h["labels"] == h["metadata"]["labels"]
        assert Path(h["path"]).is_file() and h["target"] == "images"


def test_search_sentences_where_and_id(engine_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--text", "Cardiomegaly with mild pulmonary edema.",
                           "--target", "sentences", "--where", "sex=M", "--where", "labels=Edema", "--json")
    hits = json.loads(out)
    assert code == 0 and hits[0]["matched_text"] == "Cardiomegaly with mild pulmonary edema."
    assert {h["id"] for h in hits} == {"case3"}
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--id", "case0", "--k", "2", "--json")
    assert code == 0 and [h["id"] for h in json.loads(out)][0] == "case6"
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--id", "case0", "--k", "6", "--hide-duplicates",
                           "0.99", "--json")
    assert code == 0 and "case6" not in [h["id"] for h in json.loads(out)]


def test_search_image_and_table(engine_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = engine_bundle.parent / "images" / "case2.png"
    code, out, _ = run_cli(capsys, "search", str(engine_bundle), "--image", str(image), "--target", "reports")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["rank", "cosine", "id"]
    assert len(out.splitlines()) == 1 + sum(1 for r in REPORTS if r)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--id", "nope"], "nope"),
        (["--text", "effusion", "--where", "gender=F"], "valid columns: sex, labels, width, height"),
        (["--text", "effusion", "--where", "sex"], "COL=VALUE"),
        (["--text", "  "], "empty"),
        (["--text", "effusion", "--target", "sentences", "--hide-duplicates", "0.9"], "sentences"),
        (["--image", "/nonexistent/x.png"], "does not exist"),
    ],
)
def test_search_user_errors_are_one_line(engine_bundle: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                         message: str) -> None:
    code, out, err = run_cli(capsys, "search", str(engine_bundle), *argv)
    lines = err.strip().splitlines()
    assert code != 0 and out == "" and len(lines) == 1
    assert lines[0].startswith("cxr-explorer: error:") and message in lines[0]


def test_missing_bundle_and_unreadable_image(tmp_path: Path, engine_bundle: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "search", str(tmp_path / "none"), "--text", "effusion")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "does not exist" in err
    code, _, err = run_cli(capsys, "search", str(tmp_path), "--text", "effusion")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "not a bundle" in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    code, _, err = run_cli(capsys, "ground", str(engine_bundle), "--image", str(bad), "--text", "effusion")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "bad.png" in err


def test_ground_writes_overlay(engine_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_png = tmp_path / "overlay.png"
    code, out, _ = run_cli(capsys, "ground", str(engine_bundle), "--id", "case1", "--text", "consolidation",
                           "--out", str(out_png), "--json")
    result = json.loads(out)
    assert code == 0 and result["out"] == str(out_png) and result["id"] == "case1"
    assert -1.0 <= result["score"] <= 1.0 and result["grid_min"] <= result["grid_max"]
    with Image.open(out_png) as img:
        assert img.size == SIZES[1] and img.mode == "RGBA"
        rgba = np.asarray(img)
    assert (rgba[..., 0] != rgba[..., 2]).any()  # coloured heatmap pixels inside the crop
    code, out, _ = run_cli(capsys, "ground", str(engine_bundle), "--image",
                           str(engine_bundle.parent / "images" / "case1.png"), "--text", "consolidation")
    assert code == 0 and "score" in out and "grid_max" in out


def test_ground_unknown_id(engine_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "ground", str(engine_bundle), "--id", "missing", "--text", "effusion")
    assert code != 0 and "missing" in err and len(err.strip().splitlines()) == 1

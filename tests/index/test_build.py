"""The index job on hostile input: every bad kind is skipped with its reason, the rest indexed, exit code 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxr_explorer.cli import main
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store import BuildArea
from tests.helpers.corpora import GOOD, LONG_REPORT, write_good_csv, write_hostile_csv

EXPECTED_REASONS = {
    "images/missing.png": "missing",
    "images/empty.png": "empty",
    "images/truncated.png": "truncated",
    "images/corrupt.jpg": "corrupt",
    "images/text.png": "not-an-image",
    "images/bomb.png": "decompression-bomb",
    "images/bad.dcm": "unsupported-dicom",
    "": "no-path",
}


@pytest.fixture(scope="module")
def hostile_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    root = tmp_path_factory.mktemp("hostile")
    corpus = write_hostile_csv(root)
    out = root / "bundle"
    code = main(["build", str(corpus), "--out", str(out), "--model", "tiny-random", "--workers", "1",
                 "--threads", "1", "--chunk-size", "4", "--progress", "none"])
    return out, code, corpus.read_text()


def test_hostile_exit_zero_and_valid_indexed(hostile_bundle: tuple[Path, int, str]) -> None:
    out, code, _ = hostile_bundle
    assert code == 0
    b = Bundle.open(out)
    assert sorted(b.metadata["path"]) == sorted(f"images/{g}" for g in GOOD)
    assert b.metadata["id"].is_unique and b.count == len(GOOD)


def test_hostile_skips_listed_with_reasons(hostile_bundle: tuple[Path, int, str]) -> None:
    out, _, _ = hostile_bundle
    b = Bundle.open(out)
    by_path = {s["path"]: s["reason"] for s in b.skipped if s["reason"] != "duplicate"}
    assert by_path == EXPECTED_REASONS
    dup = [s for s in b.skipped if s["reason"] == "duplicate"]
    assert len(dup) == 1 and dup[0]["path"] == "images/good1.png"
    csv = pd.read_csv(Bundle.open(out).skipped_csv, keep_default_na=False)
    assert len(csv) == len(b.skipped) and set(csv.columns) == {"id", "path", "reason", "detail"}
    assert b.manifest["build"]["skipped_by_reason"]["missing"] == 1


def test_hostile_reports(hostile_bundle: tuple[Path, int, str]) -> None:
    out, _, _ = hostile_bundle
    b = Bundle.open(out)
    meta = b.metadata.set_index("path")
    assert meta.loc["images/good2.jpg", "report"] == ""  # empty report: image indexed, no report vector
    rows_with_report = set(b.ids("reports").tolist())
    assert b.row_of(meta.loc["images/good2.jpg", "id"]) not in rows_with_report
    assert len(rows_with_report) == len(GOOD) - 1
    odd = meta.loc["images/good4.png", "report"]
    assert "[SEP]" not in odd and "(SEP)" in odd and "(MASK)" in odd and "<b>" not in odd and "\x00" not in odd
    long_sents = meta.loc["images/good3.png", "sentences"]
    assert len(long_sents) == 70 and " ".join(long_sents) == LONG_REPORT  # nothing dropped
    assert b.manifest["build"]["windowed_reports"] == 1
    assert "sentence-chunks-mean" in b.manifest["build"]["text"]["long_report_strategy"]
    s = b.sentences
    assert (s["row"] == b.row_of(meta.loc["images/good3.png", "id"])).sum() == 70
    norms = np.linalg.norm(b.vectors("reports"), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_info_json(hostile_bundle: tuple[Path, int, str], capsys: pytest.CaptureFixture[str]) -> None:
    out, _, _ = hostile_bundle
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == len(GOOD)
    assert {"path", "reason"} <= set(info["skipped"][0])
    assert len(info["skipped"]) == len(EXPECTED_REASONS) + 1
    assert main(["info", str(out), "--verify"]) == 0
    assert "all match" in capsys.readouterr().out


def test_thumbnails_and_patches(hostile_bundle: tuple[Path, int, str]) -> None:
    from io import BytesIO

    from PIL import Image

    b = Bundle.open(out := hostile_bundle[0])
    for row in range(b.count):
        thumb = Image.open(BytesIO(b.thumbnail(row)))
        assert thumb.format == "JPEG" and max(thumb.size) <= 256
    assert b.patches().shape == (b.count, 15, 15, 128) and out.is_dir()


@pytest.mark.parametrize(("args", "message"), [
    (["{root}/nope.csv"], "does not exist"),
    (["{root}/empty.csv"], "is empty"),
    (["{root}/header.csv"], "no rows"),
    (["{root}/good.csv", "--image-col", "nope"], "no column 'nope' for --image-col"),
    (["{root}/good.csv", "--text-col", "report", "nope"], "no column 'nope' for --text-col"),
    (["{root}/noimg"], "no images found"),
    (["{root}/good.csv", "--shard", "3/2"], "bad --shard"),
])
def test_misspecified_corpus_fails_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                        message: str) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("image_path,report\n")
    (tmp_path / "noimg").mkdir()
    (tmp_path / "noimg" / "notes.txt").write_text("hello")
    write_good_csv(tmp_path, 1, "good.csv")
    argv = ["build", *(a.format(root=tmp_path) for a in args), "--out", str(tmp_path / "b"), "--model", "tiny-random"]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cxr-explorer: error:") and message in err[-1]
    assert not BuildArea(tmp_path / "b").chunks.committed()


@pytest.mark.slow  # a fresh Python process
def test_user_error_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "cxr_explorer", "build", str(tmp_path / "nope.csv"), "--out",
                           str(tmp_path / "b"), "--model", "tiny-random"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "does not exist" in proc.stderr.strip().splitlines()[-1]


def test_a_build_where_every_item_was_skipped_says_so_loudly(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for k in range(3):
        (corpus / f"x{k}.png").write_text("not an image")
    code = main(["build", str(corpus), "--out", str(tmp_path / "b"), "--model", "tiny-random", "--workers", "0",
                 "--progress", "none"])
    captured = capsys.readouterr()
    assert code == 1
    assert "skipped 3 (not-an-image: 3)" in captured.out
    assert "WARNING: the bundle is EMPTY: every one of the 3 corpus items was skipped" in captured.err

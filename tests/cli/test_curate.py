"""``cxr-explorer curate`` end to end on a tiny-random bundle with planted faults (vectors and thumbnails)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cxr_explorer.cli import main
from cxr_explorer.retrieval.curate.evaluate import score_ranking
from tests.helpers import curate_bundle
from tests.helpers.curate_bundle import PIXEL_HINTS, FaultBundle


@pytest.fixture(scope="module")
def fb(tmp_path_factory: pytest.TempPathFactory) -> FaultBundle:
    return curate_bundle.build(tmp_path_factory.mktemp("curate") / "bundle")


@pytest.fixture(scope="module")
def report(fb: FaultBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    before = sorted(p.name for p in fb.root.iterdir())
    assert main(["curate", str(fb.root), "--label-col", "labels", "--split-col", "split", "--out", str(out)]) == 0
    assert sorted(p.name for p in fb.root.iterdir()) == before  # nothing written into the bundle
    return out


def test_writes_a_table_per_check_and_a_summary(report: Path) -> None:
    summary = json.loads((report / "summary.json").read_text())
    assert set(summary["checks"]) == {"mismatch", "labels", "outliers", "pixels", "leakage_split"}
    assert summary["model_is_real"] is False and "not probabilities" in summary["note"]
    for name, info in summary["checks"].items():
        pq, csv = pd.read_parquet(report / f"{name}.parquet"), pd.read_csv(report / f"{name}.csv")
        assert len(pq) == len(csv) == info["rows"] and int(pq["flagged"].sum()) == info["flagged"]
        assert list(pq.columns[:6]) == ["rank", "id", "row", "severity", "flagged", "evidence"]
        assert any(c.startswith("threshold_") for c in pq.columns)
        assert info["thresholds"] and pq["id"].astype(str).head(10).tolist() == info["worst"]


def _score(report: Path, name: str, truth: set[str]):  # type: ignore[no-untyped-def]
    t = pd.read_parquet(report / f"{name}.parquet")
    return score_ranking(t["id"].tolist(), t.loc[t["flagged"], "id"].tolist(), truth)


def test_planted_faults_come_first(fb: FaultBundle, report: Path) -> None:
    p = fb.planted
    assert _score(report, "mismatch", p.swapped).precision_at_k >= 0.8
    assert _score(report, "labels", p.flipped).precision_at_k >= 0.75
    assert _score(report, "outliers", p.outliers).precision_at_k >= 0.9
    leak = _score(report, "leakage_split", p.duplicates)
    assert leak.precision_at_k == 1.0 and leak.flagged_recall == 1.0


def test_pixel_faults_get_their_hint(fb: FaultBundle, report: Path) -> None:
    t = pd.read_parquet(report / "pixels.parquet").set_index("id")
    for case_id, kind in fb.pixel_faults.items():
        assert PIXEL_HINTS[kind] in t.loc[case_id, "hints"], (kind, t.loc[case_id, "hints"])
    flagged = set(t.index[t["flagged"]])
    assert flagged == set(fb.pixel_faults)  # clean phantoms raise no hint


def test_against_another_bundle(fb: FaultBundle, tmp_path: Path) -> None:
    out = tmp_path / "against"
    assert main(["curate", str(fb.root), "--against", str(fb.root), "--no-pixels", "--out", str(out)]) == 0
    pairs = pd.read_csv(out / "leakage_bundles.csv")
    assert len(pairs) >= len(fb.planted.data.ids)  # every case finds itself in an identical bundle
    by_vector = pairs["found_by"].str.contains("vector")
    assert by_vector.sum() >= len(fb.planted.data.ids) and (pairs.loc[by_vector, "cosine"] >= 0.95).all()
    assert (pairs.loc[~by_vector, "hash_distance"].between(0, 40) | pairs.loc[~by_vector, "same_report"]).all()
    assert "reference_knn_distance" in pd.read_csv(out / "outliers.csv").columns


@pytest.mark.parametrize(("argv", "message"), [
    (["--label-col", "nope"], "no column 'nope' for --label-col"),
    (["--split-col", "nope"], "no column 'nope' for --split-col"),
    (["--k", "0"], "--k must be from 1 to 1000"),
    (["--dup-threshold", "1.5"], "--dup-threshold must be a cosine"),
])
def test_bad_options_are_one_line_errors(fb: FaultBundle, tmp_path: Path, argv: list[str], message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curate", str(fb.root), "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cxr-explorer: error: ") and message in err[-1]


def test_missing_bundle_and_bad_prompts(fb: FaultBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curate", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "prompts.json"
    bad.write_text(json.dumps({"Effusion": {"positive": []}}))
    assert main(["curate", str(fb.root), "--label-col", "labels", "--prompts", str(bad), "--out",
                 str(tmp_path / "r")]) == 2
    assert "non-empty list of texts under 'positive'" in capsys.readouterr().err


def test_prompts_add_zero_shot_margins(fb: FaultBundle, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"Effusion": {"positive": ["pleural effusion"], "negative": ["no effusion"]}}))
    out = tmp_path / "zs"
    assert main(["curate", str(fb.root), "--label-col", "labels", "--prompts", str(prompts), "--no-pixels",
                 "--out", str(out)]) == 0
    t = pd.read_parquet(out / "labels.parquet")
    has = t["labels"].str.split("|").map(lambda s: "Effusion" in s)
    assert t.loc[has, "zero_shot_margin"].notna().all() and t.loc[~has, "zero_shot_margin"].isna().all()


def test_a_registered_check_runs_with_no_other_edit(fb: FaultBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    spec = curate_bundle.register_parity(monkeypatch)
    with pytest.raises(SystemExit) as listed:
        main(["curate", "--list-checks"])
    assert listed.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == [
        "mismatch", "labels", "outliers", "pixels", "leakage_split", "leakage_bundles", "parity"]
    assert f"parity           {spec.title}: {spec.help}" in lines
    out = tmp_path / "parity"
    assert main(["curate", str(fb.root), "--no-pixels", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    n = len(fb.planted.data.ids)
    assert f"parity           {n:>7} rows  {n // 2:>6} flagged   {spec.title}" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["checks"]) == ["mismatch", "outliers", "parity"]
    assert summary["checks"]["parity"]["thresholds"] == {"modulus": 2}
    assert summary["config"]["settings"]["parity"] == {"modulus": 2} and summary["config"]["skip"] == ["pixels"]
    assert (pd.read_parquet(out / "parity.parquet")["threshold_modulus"] == 2).all()


def test_options_set_the_settings_of_the_checks_that_take_them(fb: FaultBundle, tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    assert main(["curate", str(fb.root), "--split-col", "split", "--k", "7", "--dup-threshold", "0.9",
                 "--no-pixels", "--out", str(out)]) == 0
    settings = json.loads((out / "summary.json").read_text())["config"]["settings"]
    assert settings["mismatch"]["k"] == settings["labels"]["k"] == settings["outliers"]["k"] == 7
    assert settings["leakage_split"]["k"] == 5 and settings["leakage_split"]["min_cosine"] == 0.9  # --k: kNN checks
    assert settings["mismatch"]["max_rank"] == 5 and settings["pixels"]["blank_std"] == 0.03


def test_bad_review_lines_are_reported_never_fatal(fb: FaultBundle, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from cxr_explorer.retrieval.curate.review import ReviewLog, review_dir

    folder = review_dir(fb.root)
    try:
        ReviewLog(folder, "ana").append("labels", "c1", "exclude")
        with open(folder / "ana.jsonl", "ab") as fh:
            fh.write(b'{"ts_ns": "1", "curator": "ana", "session": "s", "seq": 1, "check": "labels", "id": "x", '
                     b'"decision": "ok"}\n')
        assert main(["curate", str(fb.root), "--no-pixels", "--out", str(tmp_path / "r")]) == 0
        out = capsys.readouterr().out
        assert "review: 1 current decision(s) by 1 curator(s)" in out and "1 bad line(s) skipped" in out
        assert "ana.jsonl:2: skipped: field 'ts_ns' is not an integer" in out
    finally:
        import shutil

        shutil.rmtree(folder)

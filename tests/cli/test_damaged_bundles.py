"""Damaged bundles through the CLI: each case ends in one ``damaged bundle: FILE, ...`` line naming the fix (never a
traceback), nothing is lost, and nothing damaged is drawn or counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import cxr_explorer.retrieval.engine.engine
from cxr_explorer.cli import main
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store import names, versions
from tests.helpers.corpora import write_good_csv
from tests.helpers.damage import as_older_bundle, current_folder, flip_patch_row, record_checksums
from tests.helpers.synthetic import tiny_model


@pytest.fixture(autouse=True)
def cached_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine.open loads the bundle's model by name; hand it the already loaded tiny model instead."""
    monkeypatch.setattr(cxr_explorer.retrieval.engine.engine, "load_model", lambda *a, **k: tiny_model())


@pytest.fixture
def bundle(engine_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the engine bundle (7 cases, ``labels`` with ``|``) this test may damage."""
    return Path(shutil.copytree(engine_bundle, tmp_path / "b"))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "damaged bundle: " in lines[0]
    return lines[0]


def build(capsys: pytest.CaptureFixture[str], corpus: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(capsys, "build", str(corpus), "--out", str(out), "--model", "tiny-random", "--workers", "1",
                   "--threads", "1", "--progress", "none", *extra)


def test_append_after_a_lost_current_is_refused_and_the_original_items_stay(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x"
    assert build(capsys, write_good_csv(tmp_path / "first", 4), out)[0] == 0
    (out / names.CURRENT).unlink()
    code, stdout, err = build(capsys, write_good_csv(tmp_path / "other", 2, start=10), out, "--append")
    assert code != 0 and "built" not in stdout
    assert "CURRENT, missing although versions/ holds 000001" in one_line(err)
    code, _, err = run_cli(capsys, "info", str(out))
    assert code != 0 and "CURRENT, missing" in one_line(err) and "no manifest.json" not in err
    versions.write_current(out, 1)
    with Bundle.open(out) as b:
        assert b.count == 4


def test_info_verify_names_a_flipped_patch_row_and_the_fix(bundle: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    flip_patch_row(bundle, 5)
    code, out, _ = run_cli(capsys, "info", str(bundle))
    assert code == 0  # opening does not read the patches
    code, out, _ = run_cli(capsys, "info", str(bundle), "--verify")
    assert code == 1 and f"MISMATCH: {names.PATCHES}" in out and "rebuild" in out


def test_grounding_a_damaged_row_is_refused_others_still_ground(bundle: Path, capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    flip_patch_row(bundle, 5)
    with Bundle.open(bundle) as b:
        damaged, clean = str(b.metadata["id"].iloc[5]), str(b.metadata["id"].iloc[0])
    code, out, err = run_cli(capsys, "ground", str(bundle), "--id", damaged, "--text", "right pleural effusion",
                             "--json")
    assert code != 0 and out == "" and names.PATCHES in one_line(err) and "--verify" in err
    code, out, _ = run_cli(capsys, "ground", str(bundle), "--id", clean, "--text", "right pleural effusion", "--json")
    assert code == 0 and json.loads(out)


def test_an_older_bundle_with_out_of_range_patches_draws_no_map(bundle: Path, capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    as_older_bundle(bundle)
    flip_patch_row(bundle, 5)
    record_checksums(bundle)
    with Bundle.open(bundle) as b:
        damaged = str(b.metadata["id"].iloc[5])
    code, out, err = run_cli(capsys, "ground", str(bundle), "--id", damaged, "--text", "right pleural effusion",
                             "--json")
    assert code != 0 and out == "" and "outside [-1, 1]" in one_line(err)


def test_a_flipped_count_is_one_line_not_an_index_error(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = current_folder(bundle) / names.MANIFEST
    path.write_text(path.read_text().replace('"count": 7', '"count": 6'))
    for argv in (["info", str(bundle)], ["info", str(bundle), "--verify"],
                 ["search", str(bundle), "--text", "effusion", "--where", "labels=Effusion"]):
        code, _, err = run_cli(capsys, *argv)
        assert code != 0 and names.MANIFEST in one_line(err)


@pytest.mark.parametrize(("field", "value"), [("metadata_columns", ["sexx", "labels"]),
                                              ("indexes", {"images": "bogus"}), ("count", "7")])
def test_bad_manifest_fields_of_an_older_bundle_are_one_line(bundle: Path, capsys: pytest.CaptureFixture[str],
                                                             field: str, value: Any) -> None:
    """An older bundle has no manifest digest: the field check alone names the field."""
    as_older_bundle(bundle)
    path = current_folder(bundle) / names.MANIFEST
    manifest = json.loads(path.read_text())
    manifest[field] = value
    path.write_text(json.dumps(manifest))
    code, _, err = run_cli(capsys, "search", str(bundle), "--text", "effusion")
    assert code != 0 and field in one_line(err)


def test_a_manifest_that_is_a_list_is_one_line(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    as_older_bundle(bundle)
    (current_folder(bundle) / names.MANIFEST).write_text("[]")
    code, _, err = run_cli(capsys, "info", str(bundle))
    assert code != 0 and "not a JSON object" in one_line(err)


def test_a_deleted_version_manifest_is_one_line(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (current_folder(bundle) / names.MANIFEST).unlink()
    code, _, err = run_cli(capsys, "info", str(bundle))
    assert code != 0 and "manifest.json, missing from the current version" in one_line(err)


def test_an_older_bundle_without_label_separators_filters_labels(bundle: Path, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    as_older_bundle(bundle, drop=("label_separators",))
    code, out, err = run_cli(capsys, "search", str(bundle), "--text", "effusion", "--where", "labels=Effusion",
                             "--json")
    assert code == 0, err
    hits = json.loads(out)
    assert hits and all("Effusion" in h["labels"].split("|") for h in hits)
    code, out, _ = run_cli(capsys, "info", str(bundle))
    assert code == 0 and "not verifiable" in out

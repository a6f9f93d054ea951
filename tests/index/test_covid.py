"""The shared covid_chestxray corpus (its first 200 rows: real JPEG/PNG files of every size, the preset, the notes)
builds with tiny-random and searches honour --where. The whole corpus is a benchmark's job, not CI's: on two busy
cores it once took the suite past its limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxr_explorer.cli import main
from cxr_explorer.retrieval.bundle.reader import Bundle
from tests.helpers.paths import COVID_CORPUS

LIMIT = 200
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.slow,  # builds the first 200 items of the covid corpus
    pytest.mark.skipif(not COVID_CORPUS.is_dir(),
                       reason=f"shared corpus not found at {COVID_CORPUS} (../shared/data relative to the repo root); "
                       "this test needs the covid_chestxray corpus"),
]


@pytest.fixture(scope="module")
def covid_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("covid") / "bundle"
    assert main(["build", str(COVID_CORPUS), "--out", str(out), "--model", "tiny-random", "--progress", "none",
                 "--limit", str(LIMIT)]) == 0
    return out


def test_corpus_rows_indexed(covid_bundle: Path) -> None:
    b = Bundle.open(covid_bundle, expect_model="tiny-random")
    assert b.count + len(b.skipped) == LIMIT and b.count >= LIMIT - 3
    assert b.metadata["id"].is_unique and "view" in b.metadata_columns and "patient_id" not in b.metadata_columns
    assert b.manifest["build"]["columns"]["preset"] == "covid_chestxray"
    assert len(b.ids("reports")) >= 0.75 * LIMIT and len(b.sentences) > len(b.ids("reports"))


def search(capsys: pytest.CaptureFixture[str], bundle: Path, *args: str) -> list[dict]:
    assert main(["search", str(bundle), *args, "--json", "--k", "5"]) == 0
    return json.loads(capsys.readouterr().out)


def test_text_image_and_id_search_with_where(covid_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = Bundle.open(covid_bundle)
    hits = search(capsys, covid_bundle, "--text", "right pleural effusion", "--where", "view=AP")
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5] and all(h["view"] == "AP" for h in hits)
    assert hits[0]["score"] >= hits[-1]["score"]
    first = b.metadata.iloc[0]
    hits = search(capsys, covid_bundle, "--image", str(b.image_path(0)), "--where", f"view={first['view']}")
    assert hits[0]["id"] == first["id"] and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    hits = search(capsys, covid_bundle, "--id", str(first["id"]), "--where", "view=PA", "--target", "reports")
    assert all(h["view"] == "PA" and h["id"] != first["id"] for h in hits) and len(hits) == 5

"""Resume and refusals; the bundle comparison every crash test uses (the kills themselves: test_index_crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxr_explorer.index.build_state import BuildStateError
from cxr_explorer.retrieval.bundle.reader import BundleError
from tests.helpers.corpora import write_good_csv


def test_rerun_complete_and_refusals(tmp_path: Path, build) -> None:
    corpus = write_good_csv(tmp_path, 3)
    out = tmp_path / "b"
    build(corpus, out)
    assert build(corpus, out).status == "complete"
    with pytest.raises(BuildStateError, match="model='tiny-random'.*model='biovil'"):
        from cxr_explorer.index.runner import BuildConfig, run_build

        run_build(BuildConfig(corpus=corpus, out=out, model="biovil", progress="none"))
    bigger = write_good_csv(tmp_path, 5, "bigger.csv")
    with pytest.raises(BundleError, match="2 items it does not hold; pass --append"):
        build(bigger, out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(BundleError, match="not empty and is not a bundle"):
        build(corpus, tmp_path / "other")

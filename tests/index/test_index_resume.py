"""Resume and refusals; the bundle comparison every crash test uses (the kills themselves: test_index_crash.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.chunks import BuildStateError
from retrieval.bundle import Bundle, BundleError
from tests.helpers.corpora import write_good_csv


def assert_same_bundle(a: Path, b: Path) -> None:
    """Same ids exactly once, same image/report vectors and patches per id."""
    x, y = Bundle.open(a), Bundle.open(b)
    assert x.metadata["id"].is_unique and y.metadata["id"].is_unique
    assert sorted(x.metadata["id"]) == sorted(y.metadata["id"])
    order = [y.row_of(i) for i in x.metadata["id"]]
    np.testing.assert_allclose(x.vectors("images"), y.vectors("images")[order], atol=1e-5)
    np.testing.assert_allclose(np.asarray(x.patches(), np.float32), np.asarray(y.patches()[order], np.float32),
                               atol=2e-3)
    rep = {int(r): v for r, v in zip(y.ids("reports"), y.vectors("reports"), strict=True)}
    for r, v in zip(x.ids("reports"), x.vectors("reports"), strict=True):
        np.testing.assert_allclose(v, rep[order[int(r)]], atol=1e-5)
    assert len(x.sentences) == len(y.sentences) and len(x.skipped) == len(y.skipped)


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_rerun_complete_and_refusals(tmp_path: Path, build) -> None:  # noqa: F811
    corpus = write_good_csv(tmp_path, 3)
    out = tmp_path / "b"
    build(corpus, out)
    assert build(corpus, out).status == "complete"
    with pytest.raises(BuildStateError, match="model='tiny-random'.*model='biovil'"):
        from index.runner import BuildConfig, run_build

        run_build(BuildConfig(corpus=corpus, out=out, model="biovil", progress="none"))
    bigger = write_good_csv(tmp_path, 5, "bigger.csv")
    with pytest.raises(BundleError, match="2 items it does not hold; pass --append"):
        build(bigger, out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(BundleError, match="not empty and is not a bundle"):
        build(corpus, tmp_path / "other")

"""--append adds only new items; shards + merge equal one build; merges and appends refuse mismatches."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.cli import main
from cxr_explorer.index.runner import BuildConfig, run_build
from cxr_explorer.index.shards import merge_bundles, parse_shard, shard_of
from cxr_explorer.retrieval.bundle.reader import Bundle, BundleError
from tests.helpers.corpora import assert_same_bundle, write_good_csv


def test_append_adds_only_new_rows(tmp_path: Path, build) -> None:
    old = write_good_csv(tmp_path, 4, "old.csv")
    out = tmp_path / "b"
    build(old, out)
    before = Bundle.open(out)
    old_vectors = {i: before.vectors("images")[r].copy() for r, i in enumerate(before.metadata["id"])}
    new = write_good_csv(tmp_path, 7, "new.csv")  # the 4 old rows + 3 new ones
    summary = build(new, out, append=True)
    assert summary.status == "appended" and summary.indexed_now == 3 and summary.count == 7
    after = Bundle.open(out)
    assert after.metadata["id"].is_unique and after.count == 7
    for item_id, vec in old_vectors.items():  # old rows kept as they were, not re-embedded
        np.testing.assert_array_equal(after.vectors("images")[after.row_of(item_id)], vec)
    assert build(new, out, append=True).status == "complete"
    assert build(new, out).status == "complete"  # the append command's settings are now the bundle's
    build(new, tmp_path / "clean")
    assert_same_bundle(out, tmp_path / "clean")


def test_append_refuses_other_model(tmp_path: Path, build) -> None:
    corpus = write_good_csv(tmp_path, 2)
    out = tmp_path / "b"
    build(corpus, out)
    with pytest.raises(BundleError, match="cannot append to .*model 'tiny-random'.*asks for 'biovil'"):
        run_build(BuildConfig(corpus=corpus, out=out, model="biovil", append=True, progress="none"))


def test_append_refused_through_cli(tmp_path: Path, build, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_good_csv(tmp_path, 2)
    build(corpus, tmp_path / "b")
    assert main(["build", str(corpus), "--out", str(tmp_path / "b"), "--model", "biovil", "--append"]) == 2
    assert "built with model 'tiny-random'" in capsys.readouterr().err


def test_shard_assignment_is_stable_and_spread() -> None:
    ids = [f"images/img{i}.png" for i in range(2000)]
    assert [shard_of(i, 4) for i in ids[:5]] == [shard_of(i, 4) for i in ids[:5]]
    counts = Counter(shard_of(i, 4) for i in ids)
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 400
    assert shard_of("x", 1) == 0
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "a/b", "1", "-1/2"):
        with pytest.raises(ValueError, match="bad --shard"):
            parse_shard(bad)


def test_shards_then_merge_equal_one_build(tmp_path: Path, build) -> None:
    corpus = write_good_csv(tmp_path, 9)
    (tmp_path / "images" / "img4.png").write_bytes(b"")  # one skipped item goes to its shard
    with open(corpus, "a") as fh:  # corpus-level skips (no path, duplicate) are owned by exactly one shard too
        fh.write(",no image,PA,\nimages/img1.png,again,PA,\n")
    shards = []
    for i in range(3):
        shards.append(tmp_path / f"shard{i}")
        build(corpus, shards[-1], shard=(i, 3))
    sizes = [Bundle.open(s).count + len(Bundle.open(s).skipped) for s in shards]
    assert sum(sizes) == 11
    merged = merge_bundles(shards, tmp_path / "merged")
    build(corpus, tmp_path / "single")
    assert_same_bundle(merged, tmp_path / "single")
    assert Bundle.open(merged).manifest["build"]["merged_from"] == [str(s) for s in shards]


def test_merge_refusals(tmp_path: Path, build) -> None:
    corpus = write_good_csv(tmp_path, 6)
    for i in range(2):
        build(corpus, tmp_path / f"s{i}", shard=(i, 2))
    with pytest.raises(BundleError, match=r"shards \[1\] are missing"):
        merge_bundles([tmp_path / "s0"], tmp_path / "m1")
    assert merge_bundles([tmp_path / "s0"], tmp_path / "m2", allow_partial=True).is_dir()
    with pytest.raises(BundleError, match="given twice"):
        merge_bundles([tmp_path / "s0", tmp_path / "s0"], tmp_path / "m3")
    build(corpus, tmp_path / "full")
    with pytest.raises(BundleError, match="both"):
        merge_bundles([tmp_path / "full", tmp_path / "s0"], tmp_path / "m4")
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m5")]) == 0
    assert Bundle.open(tmp_path / "m5").count == 6
    # the same merge again is complete (like a finished build's rerun); another merge into it is refused
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m5")]) == 0
    assert Bundle.open(tmp_path / "m5").version == 1
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s0"), "--out", str(tmp_path / "m5")]) == 2

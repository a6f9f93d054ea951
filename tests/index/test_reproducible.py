"""The vectors of a bundle do not depend on how the build was cut: chunk size, an append (a resumed or extended
build: the text cache seeded from what is already built), image batch and worker count give the same bits for the
same item, because encoder batches are decided by content (index.text_cache.token_batches, index.embed.embed_images)
and never by chunk boundaries.

Bit-identical holds on one machine, one device and one precision (the same kernels for the same shapes); across
machines or devices the vectors agree to rounding only (fp32 ~1e-6, bf16 ~1e-2 per component)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cxr_explorer.retrieval.bundle.reader import Bundle
from tests.helpers.corpora import png_bytes

SENTENCES = ["No effusion.", "Heart size normal.", "Mild cardiomegaly with a small left pleural effusion.",
             "There is no focal consolidation, pneumothorax or pulmonary oedema.", "Lines and tubes unchanged.",
             "Left basal atelectasis.", "Degenerative change of the thoracic spine is noted incidentally."]


def _corpus(root: Path, n: int = 9) -> Path:
    (root / "images").mkdir(parents=True)
    rows = []
    for k in range(n):
        (root / "images" / f"img{k}.png").write_bytes(png_bytes(k) if k != 4 else b"broken")
        picked = [SENTENCES[(k * 3 + j) % len(SENTENCES)] for j in range(1 + k % 4)]
        report = " ".join(picked * (70 if k == 6 else 1))  # item 6: over the encoder's limit, embedded as windows
        rows.append({"image_path": f"images/img{k}.png", "report": report})
    path = root / "corpus.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _vectors(folder: Path) -> dict[str, Any]:
    """Per item id: image vector, patches, report vector; per (id, sentence): its vector."""
    b = Bundle.open(folder)
    ids = b.metadata["id"].astype(str).tolist()
    out: dict[str, Any] = {}
    for row, item in enumerate(ids):
        out[f"image {item}"] = b.vectors("images")[row].tobytes()
        out[f"patches {item}"] = np.asarray(b.patches()[row]).tobytes()
    for row, vec in zip(b.ids("reports"), b.vectors("reports"), strict=True):
        out[f"report {ids[int(row)]}"] = vec.tobytes()
    for (row, text), vec in zip(zip(b.sentences["row"], b.sentences["text"], strict=True), b.vectors("sentences"),
                                strict=True):
        out[f"sentence {ids[int(row)]} {text}"] = vec.tobytes()
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _corpus(tmp_path_factory.mktemp("repro"))


@pytest.fixture(scope="module")
def straight(corpus: Path, tmp_path_factory: pytest.TempPathFactory, tiny_model) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from cxr_explorer.index.runner import BuildConfig, run_build

    out = tmp_path_factory.mktemp("straight") / "b"
    run_build(BuildConfig(corpus=corpus, out=out, model="tiny-random", workers=0, threads=1, progress="none",
                          precision="fp32", batch_size=4, text_batch=4), model=tiny_model)
    return _vectors(out)


@pytest.mark.parametrize(("chunk_size", "workers"), [(2, 0), (3, 0), (5, 1)])
def test_chunk_size_and_workers_change_no_bit(corpus: Path, straight: dict[str, Any], tmp_path: Path, tiny_model,  # type: ignore[no-untyped-def]
                                              chunk_size: int, workers: int) -> None:
    from cxr_explorer.index.runner import BuildConfig, run_build

    out = tmp_path / "b"
    run_build(BuildConfig(corpus=corpus, out=out, model="tiny-random", workers=workers, threads=1, progress="none",
                          precision="fp32", batch_size=4, text_batch=4, chunk_size=chunk_size), model=tiny_model)
    got = _vectors(out)
    assert sorted(got) == sorted(straight)
    assert [k for k in straight if got[k] != straight[k]] == []


def test_an_append_changes_no_bit(corpus: Path, straight: dict[str, Any], tmp_path: Path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    from cxr_explorer.index.runner import BuildConfig, run_build

    out = tmp_path / "b"
    first = tmp_path / "first.csv"
    pd.read_csv(corpus).head(5).to_csv(first, index=False)
    (tmp_path / "images").symlink_to(corpus.parent / "images")
    flags: dict[str, Any] = {"model": "tiny-random", "workers": 0, "threads": 1, "progress": "none",
                             "precision": "fp32", "batch_size": 4, "text_batch": 4, "chunk_size": 2}
    run_build(BuildConfig(corpus=first, out=out, **flags), model=tiny_model)
    run_build(BuildConfig(corpus=corpus, out=out, append=True, **flags), model=tiny_model)
    got = _vectors(out)
    assert sorted(got) == sorted(straight)
    assert [k for k in straight if got[k] != straight[k]] == []


def test_a_shard_split_and_merge_change_no_bit(corpus: Path, straight: dict[str, Any], tmp_path: Path,
                                               tiny_model) -> None:  # type: ignore[no-untyped-def]
    from cxr_explorer.index.runner import BuildConfig, run_build
    from cxr_explorer.index.shards import merge_bundles

    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, out in enumerate(shards):
        run_build(BuildConfig(corpus=corpus, out=out, model="tiny-random", workers=0, threads=1, progress="none",
                              precision="fp32", batch_size=4, text_batch=4, shard=(i, 3)), model=tiny_model)
    got = _vectors(merge_bundles(shards, tmp_path / "merged"))
    assert sorted(got) == sorted(straight)
    assert [k for k in straight if got[k] != straight[k]] == []


class _Stopped(Exception):
    """Stands for a build killed after its first committed chunk."""


def test_a_resume_point_changes_no_bit(corpus: Path, straight: dict[str, Any], tmp_path: Path, tiny_model,  # type: ignore[no-untyped-def]
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from cxr_explorer.index import runner

    cfg = runner.BuildConfig(corpus=corpus, out=tmp_path / "b", model="tiny-random", workers=0, threads=1,
                             progress="none", precision="fp32", batch_size=4, text_batch=4, chunk_size=3)
    commit = runner._commit
    commits: list[int] = []

    def stop_after_first(*args: Any, **kwargs: Any) -> None:
        if commits:
            raise _Stopped
        commits.append(1)
        commit(*args, **kwargs)

    monkeypatch.setattr(runner, "_commit", stop_after_first)
    with pytest.raises(_Stopped):
        runner.run_build(cfg, model=tiny_model)
    monkeypatch.undo()
    summary = runner.run_build(cfg, model=tiny_model)
    assert 0 < summary.indexed_now < len(pd.read_csv(corpus)) - 1  # the rerun resumed: the first chunk was kept
    got = _vectors(tmp_path / "b")
    assert sorted(got) == sorted(straight)
    assert [k for k in straight if got[k] != straight[k]] == []

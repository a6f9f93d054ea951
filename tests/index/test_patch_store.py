"""``build --patch-store int8``: a compact patch store (int8 + one float16 scale per patch) recorded in the manifest,
read transparently by ``Bundle.patches()`` and grounding (maps within 0.01 of the fp16 store's), kept by
``--append``, and about half the bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store.patch_store import Int8Patches
from cxr_explorer.retrieval.engine.engine import Engine
from tests.helpers.corpora import write_good_csv


def test_int8_patch_store_grounds_like_fp16(tmp_path: Path, build, tiny_model) -> None:
    corpus = write_good_csv(tmp_path, 5)
    build(corpus, tmp_path / "fp16", precision="fp32")
    build(corpus, tmp_path / "int8", precision="fp32", patch_store="int8")
    a, b = Bundle.open(tmp_path / "fp16"), Bundle.open(tmp_path / "int8")
    assert a.manifest["patch_store"] == "fp16" and b.manifest["patch_store"] == "int8"
    pa, pb = a.patches(), b.patches()
    assert isinstance(pb, Int8Patches) and pb.shape == pa.shape and b.verify() == []
    np.testing.assert_allclose(np.asarray(pb[[1, 3]]), np.asarray(pa[[1, 3]], np.float32), atol=0.01)
    size = {n: sum(i["bytes"] for f, i in x.manifest["files"].items() if "patch" in f) for n, x in (("a", a), ("b", b))}
    assert size["b"] < 0.6 * size["a"]
    ea, eb = Engine.open(tmp_path / "fp16", model=tiny_model), Engine.open(tmp_path / "int8", model=tiny_model)
    for row in range(5):
        ga, gb = ea.grounder.ground_case(row, "pleural effusion"), eb.grounder.ground_case(row, "pleural effusion")
        assert np.abs(ga.grid - gb.grid).max() < 0.01
        assert np.array_equal(np.isnan(ga.map), np.isnan(gb.map))  # outside the crop: no value in either
        assert np.nanmax(np.abs(ga.map - gb.map)) < 0.01
        assert np.abs(ga.grid).max() > 0.01  # the maps are not trivially zero


def test_append_keeps_the_int8_store(tmp_path: Path, build) -> None:
    build(write_good_csv(tmp_path, 3, "a.csv"), tmp_path / "b", patch_store="int8")
    summary = build(write_good_csv(tmp_path, 5, "b.csv"), tmp_path / "b", append=True)
    assert summary.status == "appended"
    bundle = Bundle.open(tmp_path / "b")
    assert bundle.manifest["patch_store"] == "int8" and bundle.count == 5 and bundle.patches().shape[0] == 5

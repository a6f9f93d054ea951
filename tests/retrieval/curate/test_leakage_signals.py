"""Leakage found without the model: planted copies (re-encoded, 2 px smaller, brightness-shifted) of train images in
the test split, built with ``tiny-random`` (random weights put every image at cosine ~0.9999, so the image vectors
cannot tell copies from other images). The thumbnails' perceptual hashes and the identical report texts find them."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from cxr_explorer.index.runner import BuildConfig, run_build
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.writer import build_index
from cxr_explorer.retrieval.curate.base import CurateData, data_from_bundle
from cxr_explorer.retrieval.curate.leakage import LeakageConfig, check_cross_bundle, check_split_leakage, report_key
from tests.reference.make_images import thorax

ORIGINALS = 14
COPIES = 5


def _report(i: int) -> str:
    side = ("left", "right")[i % 2]
    return f"Case {i}: {side} lower lobe opacity measuring {10 + i} mm. Heart size normal. No pneumothorax."


def _copy(img: Image.Image, kind: int) -> Image.Image:
    """Re-encoded at JPEG quality 80, 2 px smaller (cropped 1 px each side); every other one 15 % brighter."""
    out = img.crop((1, 1, img.width - 1, img.height - 1))
    if kind % 2:
        out = ImageEnhance.Brightness(out).enhance(1.15)
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=80)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leak")
    rows = []
    for i in range(ORIGINALS):
        img = Image.fromarray(np.round(thorax(200 + 4 * i, 240, seed=100 + i) * 255).astype(np.uint8), "L")
        img.save(root / f"train{i}.png")
        rows.append({"path": f"train{i}.png", "report": _report(i), "split": "train"})
        if i < COPIES:
            _copy(img, i).save(root / f"test{i}.jpg", quality=95)
            rows.append({"path": f"test{i}.jpg", "report": _report(i).replace(". ", ".  "), "split": "test"})
    for j in range(4):  # unrelated cases in both splits sharing one boilerplate report: not evidence of a copy
        img = Image.fromarray(np.round(thorax(220, 250, seed=300 + j) * 255).astype(np.uint8), "L")
        img.save(root / f"other{j}.png")
        rows.append({"path": f"other{j}.png", "report": "No acute cardiopulmonary process.",
                     "split": "train" if j == 0 else "test"})
    pd.DataFrame(rows).to_csv(root / "corpus.csv", index=False)
    run_build(BuildConfig(corpus=root / "corpus.csv", out=root / "bundle", model="tiny-random", workers=0,
                          threads=1, progress="none"))
    return root / "bundle"


def _copy_pairs(table: pd.DataFrame, meta: pd.DataFrame) -> set[tuple[str, str]]:
    path = dict(zip(meta["id"].astype(str), meta["path"].astype(str), strict=True))
    return {tuple(sorted((Path(path[str(a)]).stem, Path(path[str(b)]).stem)))  # type: ignore[misc]
            for a, b in zip(table["id"], table["other_id"], strict=True)}


def test_every_planted_copy_is_found_by_hash_and_report(bundle: Path) -> None:
    with Bundle.open(bundle) as b:
        data = data_from_bundle(b)
        meta = b.metadata
    assert data.image_hashes is not None and data.image_hashes.shape[0] == data.count
    result = check_split_leakage(data, "split")
    copies = {(f"test{i}", f"train{i}") for i in range(COPIES)}
    found = result.table[result.table["found_by"].str.contains("hash")]
    assert _copy_pairs(found, meta) >= copies
    for _, row in found.iterrows():
        assert "report" in row["found_by"] and row["same_report"] and 0 <= row["hash_distance"] <= 40
    # what the model-free signals list is exactly the copies: no boilerplate report, no unrelated image
    model_free = result.table[result.table["found_by"].str.contains("hash|report")]
    assert _copy_pairs(model_free, meta) == copies
    assert result.summary["by_hash"] >= COPIES and result.summary["by_report"] >= COPIES
    assert {"found_by", "hash_distance", "same_report"} <= set(result.table.columns)


def test_cross_bundle_uses_the_same_signals(bundle: Path) -> None:
    with Bundle.open(bundle) as b:
        data = data_from_bundle(b)
    split = data.metadata["split"].to_numpy()
    test, train = (np.flatnonzero(split == s) for s in ("test", "train"))

    def subset(rows: np.ndarray, name: str) -> CurateData:
        vecs = np.ascontiguousarray(data.image_vectors[rows])
        return replace(data, name=name, ids=data.ids[rows], metadata=data.metadata.iloc[rows].reset_index(drop=True),
                       image_vectors=vecs, image_index=build_index(vecs, "flat")[0], report_index=None,
                       report_vectors=np.zeros((0, vecs.shape[1]), np.float32), report_rows=np.zeros(0, np.int64),
                       image_hashes=data.image_hashes[rows] if data.image_hashes is not None else None)

    result = check_cross_bundle(subset(test, "test"), subset(train, "train"), LeakageConfig(min_cosine=1.01))
    hits = result.table[result.table["found_by"].str.contains("hash")]
    assert len(hits) >= COPIES and (hits["found_by"] == "hash+report").all()


def test_report_key_ignores_case_spacing_and_punctuation() -> None:
    assert report_key("Heart size  NORMAL.\nNo effusion!") == report_key("heart size normal no effusion")
    assert report_key(None) == report_key("") == ""

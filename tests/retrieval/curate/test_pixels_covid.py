"""Pixel checks on real chest X-rays (covid_chestxray): planted rotated / upside-down / inverted / blank / noise
images are ranked above the real frontal images they came from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from cxr_explorer.index.decode import thumbnail_jpeg
from cxr_explorer.retrieval.curate.pixels import PixelConfig, features, hints
from tests.helpers.curate_faults import plant_images
from tests.helpers.paths import COVID_CORPUS

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not COVID_CORPUS.is_dir(),
                       reason=f"shared corpus not found at {COVID_CORPUS} (../shared/data relative to the repo root); "
                       "this test needs the covid_chestxray corpus"),
]
EXPECTED = {"rotated": "rotated 90 degrees?", "upside-down": "upside down?", "inverted": "inverted intensities?",
            "blank": "mostly blank"}


def _thumb_features(path: Path):  # type: ignore[no-untyped-def]
    import io

    return features(Image.open(io.BytesIO(thumbnail_jpeg(Image.open(path).convert("L")))))


def test_planted_pixel_faults_on_real_frontal_images(tmp_path: Path) -> None:
    meta = pd.read_csv(COVID_CORPUS / "reports.csv")
    frontal = [COVID_CORPUS / f for f in meta.loc[meta["view"] == "PA", "image_file"]]
    clean = [f for f in frontal if not hints(_thumb_features(f), PixelConfig(), None)][:5]
    assert len(clean) == 5
    kinds = plant_images(clean, tmp_path)
    for name, kind in kinds.items():
        found = hints(_thumb_features(tmp_path / name), PixelConfig(), None)
        if kind in EXPECTED:
            assert EXPECTED[kind] in found, (kind, found)
        else:  # noise: not a chest X-ray, not left-right symmetric
            assert any("symmetric" in h for h in found), found

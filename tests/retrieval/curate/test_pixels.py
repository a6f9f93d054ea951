"""Pixel hints on drawn phantoms (no model, no shared data): each planted fault raises its own hint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr_explorer.index.decode import thumbnail_jpeg
from cxr_explorer.retrieval.bundle.writer import build_index
from cxr_explorer.retrieval.curate.base import CurateData
from cxr_explorer.retrieval.curate.pixels import PixelConfig, check_pixels, features, hints, rare_views
from tests.helpers.curate_bundle import PIXEL_FAULTS, PIXEL_HINTS, phantom


@pytest.mark.parametrize("kind", sorted(PIXEL_FAULTS))
def test_each_fault_raises_its_hint(kind: str) -> None:
    assert PIXEL_HINTS[kind] in hints(features(PIXEL_FAULTS[kind](phantom(1))), PixelConfig(), None)


def test_a_clean_phantom_raises_nothing() -> None:
    assert hints(features(phantom(2)), PixelConfig(), None) == []


def test_rare_view_in_a_frontal_set() -> None:
    meta = pd.DataFrame({"view": ["PA"] * 12 + ["LATERAL", ""]})
    out = rare_views(meta, 0.1)
    assert out[12] == "view LATERAL in a mostly PA set" and out[:12] == [""] * 12 and out[13] == ""


def test_tiny_from_recorded_size_or_small_thumbnail_and_unreadable_is_listed() -> None:
    thumbs = [thumbnail_jpeg(phantom(3)), thumbnail_jpeg(phantom(4, 100, 120)), thumbnail_jpeg(phantom(5)),
              b"not an image"]
    vecs = np.eye(4, dtype=np.float32)
    meta = pd.DataFrame({"id": list("abcd"), "width": ["400", "", "90", "400"], "height": ["480", "", "80", "480"]})
    data = CurateData("t", meta["id"].to_numpy(), meta, vecs, build_index(vecs, "flat")[0], vecs,
                      np.arange(4), None, thumbnail=lambda r: thumbs[r])
    t = check_pixels(data).table.set_index("id")
    assert t.loc["a", "hints"] == "" and not t.loc["a", "flagged"]
    assert "tiny (100x120)" in t.loc["b", "hints"]  # thumbnails are never upscaled: this is the original size
    assert "tiny (90x80)" in t.loc["c", "hints"]  # recorded width/height
    assert t.loc["d", "hints"].startswith("unreadable thumbnail") and t.index[0] == "d"
    assert len(t) == 4  # every case is listed, the damaged one too

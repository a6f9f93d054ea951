"""The Compare page headless (AppTest) on a tiny-random-t bundle with priors: current and prior maps on one colour
range fitted to both, with its colour bar; phrases past the limit are announced; the interval-change table puts the
answer (best class, margin) before the per-class cosines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cxr_explorer.retrieval.temporal.compare import Comparison
from cxr_explorer.retrieval.temporal.interval import IntervalChange
from cxr_explorer.webapp.settings import BUNDLES_ENV
from cxr_explorer.webapp.views.compare.state import changes_frame
from tests.e2e.test_compare_browser import build_bundle
from tests.helpers.paths import APP_SCRIPT

RANGE = re.compile(r"colour range \[(-?\d+\.\d+), (-?\d+\.\d+)\], fitted to both maps")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("compare_page"))


@pytest.fixture()
def env(bundle: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BUNDLES_ENV, str(bundle))
        yield


def open_compare(params: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("views/compare/page.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_each_pair_has_a_fitted_shared_range_and_a_colour_bar(env: None) -> None:
    at = open_compare({"cmp_case": "a5", "cmp_phrases": "edema"})
    ranges = [RANGE.search(str(t.value)) for t in at.text]
    found = [m for m in ranges if m]
    assert len(found) == 1
    lo, hi = float(found[0].group(1)), float(found[0].group(2))
    assert -1.0 < lo < hi < 1.0 and hi - lo < 1.0  # fitted, not the flat [-1, 1]
    alts = [img.alt for i in at.image for img in i.proto.imgs]
    assert alts[:3] == ["Heatmap of the phrase edema on the current image",
                        "Heatmap of the phrase edema on the prior image", f"Colour bar from {lo:.3f} to {hi:.3f}"]


def test_phrases_past_the_limit_are_announced(env: None) -> None:
    at = open_compare({"cmp_case": "a5", "cmp_phrases": "edema; effusion; opacity; nodule; pneumothorax"})
    assert any("Showing 3 of 5 phrases (at most 3 per pair)" in str(i.value) for i in at.info)
    assert sum(bool(RANGE.search(str(t.value))) for t in at.text) == 3


def test_the_table_puts_the_answer_first() -> None:
    comparison = Comparison("a5", "a2", np.zeros(4), [IntervalChange(
        "edema", {"improving": 0.12345, "stable": 0.2, "worsening": 0.1}, "stable", 0.07655)], "stored")
    frame = changes_frame(comparison)
    assert list(frame.columns) == ["finding", "best", "margin", "improving", "stable", "worsening"]
    assert frame.iloc[0]["improving"] == 0.123 and frame.iloc[0]["margin"] == 0.077

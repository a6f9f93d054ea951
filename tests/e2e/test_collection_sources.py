"""Chromium at 1280x800 and 390x844: cases selected on the Map and a Curate check's flagged cases added to a
collection, then listed on the Collections page with how they came in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cxr_explorer.retrieval.collections.store import Collection
from tests.e2e.helpers import DESKTOP, PHONE, drag, main, open_app, settle

VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


def _add_to(page: Any, name: str) -> None:
    from playwright.sync_api import expect

    main(page).get_by_label("Collection", exact=True).fill(name)
    main(page).get_by_role("button", name="Add", exact=True).click()
    expect(main(page).get_by_text(f"to “{name}”; 0 already there.", exact=False)).to_be_visible()
    settle(page)


def _listed(page: Any, url: str, name: str, count: int) -> None:
    from playwright.sync_api import expect

    open_app(page, url, f"collections?coll={name.replace(' ', '+')}", expect_text="Export")
    expect(main(page).get_by_text(f"{name}: {count} case(s)")).to_be_visible()
    expect(main(page).locator('[data-testid="stDataFrame"]').first).to_be_visible()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_map_selection_then_collections_page(page: Any, app_server: tuple[str, Path], size: str) -> None:
    from playwright.sync_api import expect

    url, root = app_server
    page.set_viewport_size(VIEWPORTS[size])
    open_app(page, url, "map", expect_text="Colour by")
    chart = main(page).locator('[data-testid="stVegaLiteChart"] svg.marks').first
    expect(chart).to_be_visible()
    chart.scroll_into_view_if_needed()
    if size == "desktop":
        drag(page, chart.bounding_box(), [(0.08, 0.12), (0.8, 0.97)])  # a box over the plot area
    else:
        chart.locator("g.mark-symbol path").first.click(force=True)  # a tap on one point
    heading = main(page).get_by_role("heading", name="selected case", exact=False)
    expect(heading).to_be_visible()
    settle(page)
    selected = int(heading.inner_text().split()[0])
    assert selected >= (2 if size == "desktop" else 1)
    name = f"map {size}"
    _add_to(page, name)
    members = Collection(root / "bundle", name).members()
    assert len(members) == selected and {e.source for e in members.values()} == {"selection"}
    _listed(page, url, name, selected)


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_curate_flags_then_collections_page(page: Any, app_server: tuple[str, Path], size: str) -> None:
    url, root = app_server
    page.set_viewport_size(VIEWPORTS[size])
    open_app(page, url, "curate", expect_text="Thresholds")
    name = f"curate {size}"
    _add_to(page, name)
    members = Collection(root / "bundle", name).members()
    assert members and {e.source for e in members.values()} == {"curate"}
    _listed(page, url, name, len(members))

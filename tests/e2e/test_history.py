"""Chromium: every user change is one browser history entry, with no duplicates, and Back undoes it (also the first
change on a page); opening a page or a link writes nothing of its own; the default bundle stays out of URLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import go, main, open_app, search, settle

pytestmark = pytest.mark.browser


def _history_length(page: Any) -> int:
    return int(page.evaluate("window.history.length"))


def _path(page: Any, base: str) -> str:
    return page.url.removeprefix(base)


def _phrases(page: Any, text: str) -> None:
    box = page.get_by_label("Phrase(s)", exact=False)
    box.fill(text)
    box.press("Enter")
    settle(page)


def _click(page: Any, text: str) -> None:
    main(page).get_by_text(text, exact=True).click()
    settle(page)


def test_back_undoes_each_change_across_pages_without_duplicate_entries(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, expect_text="Type a query")
    steps: list[tuple[str, Callable[[], None]]] = [
        ("search", lambda: search(page, "pleural effusion")),
        ("to grounding", lambda: go(page, "Grounding")),
        ("phrases", lambda: _phrases(page, "cardiomegaly")),
        ("to map", lambda: go(page, "Map")),
        ("reports map", lambda: _click(page, "reports")),
        ("to compare", lambda: go(page, "Compare")),
        ("compare phrases", lambda: _phrases(page, "edema")),
        ("to curate", lambda: go(page, "Curate")),
        ("flagged only", lambda: _click(page, "Flagged only")),
    ]
    urls = [_path(page, url)]
    start = _history_length(page)
    for name, act in steps:
        act()
        page.wait_for_url(lambda u, seen=urls[-1]: u.removeprefix(url) != seen)  # noqa: B023
        settle(page)
        urls.append(_path(page, url))
        assert _history_length(page) == start + len(urls) - 1, f"{name}: not exactly one history entry"
    assert len(set(urls)) == len(urls), urls
    assert urls[0] == "/" and all("bundle=" not in u for u in urls)  # the default bundle stays out
    for expected in reversed(urls[:-1]):
        page.go_back()
        settle(page)
        assert _path(page, url) == expected
        if expected == "/curate":
            expect(main(page).get_by_role("radio", name="All, worst first")).to_be_checked()
        if expected == "/compare":
            expect(page.get_by_label("Phrase(s)", exact=False)).to_have_value("pleural effusion; consolidation")
        if expected == "/map":
            expect(main(page).get_by_role("radio", name="images")).to_be_checked()
        if expected == "/grounding":
            expect(page.get_by_label("Phrase(s)", exact=False)).to_have_value("pleural effusion")
    assert _path(page, url) == "/"
    expect(page.get_by_label("Free text")).to_have_value("")
    expect(main(page).get_by_text("Type a query", exact=False)).to_be_visible()
    for expected in urls[1:]:  # and Forward redoes them, still one entry each
        page.go_forward()
        settle(page)
        assert _path(page, url) == expected
    assert _history_length(page) == start + len(urls) - 1


def test_back_undoes_the_first_search(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, expect_text="Type a query")
    search(page, "pleural effusion")
    page.go_back()
    settle(page)
    assert _path(page, url) == "/"
    expect(page.get_by_label("Free text")).to_have_value("")
    expect(main(page).get_by_text("Type a query", exact=False)).to_be_visible()
    page.wait_for_timeout(500)
    assert _path(page, url) == "/"  # not rewritten to the search


def test_back_undoes_flagged_only_on_curate(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "curate", expect_text="Thresholds: ")
    main(page).get_by_text("Flagged only").click()
    page.wait_for_url("**c_show=flagged**")
    settle(page)
    page.go_back()
    settle(page)
    expect(main(page).get_by_role("radio", name="All, worst first")).to_be_checked()
    assert "c_show" not in page.url


def test_opening_a_link_adds_no_history_entry(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "grounding?gcase=nope&phrases=edema", expect_text="global similarity")
    expect(main(page).get_by_text("No case “nope” in this bundle", exact=False)).to_be_visible()
    page.wait_for_timeout(500)
    start = _history_length(page)
    assert "gcase=nope" in page.url  # nothing written on load: the link stays as given
    _phrases(page, "nodule")
    page.wait_for_url("**phrases=nodule**")
    assert "gcase" not in page.url and _history_length(page) == start + 1
    page.go_back()
    settle(page)
    assert _path(page, url) == "/grounding?gcase=nope&phrases=edema"


def test_back_undoes_a_bundle_switch(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, expect_text="Type a query")
    sidebar = page.locator('[data-testid="stSidebar"]')
    start = _history_length(page)
    sidebar.locator('[data-testid="stSelectbox"]').click()
    page.get_by_role("option", name="second", exact=False).click()
    page.wait_for_url("**bundle=second**")
    expect(sidebar.get_by_text("Bundle second")).to_be_visible()
    settle(page)
    assert _history_length(page) == start + 1
    page.go_back()
    settle(page)
    expect(sidebar.get_by_text("Bundle bundle")).to_be_visible()
    assert _path(page, url) == "/"

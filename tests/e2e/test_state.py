"""Chromium: each page's state survives a trip to the other pages, a copied link reproduces a view in a fresh
browser, and Back/Forward step through searches."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import card_ids, go, main, open_app, search, settle

pytestmark = pytest.mark.browser


def test_search_state_survives_other_pages(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, expect_text="Type a query")
    search(page, "pleural effusion")
    page.get_by_text("Options and filters").click()
    page.get_by_label("k (per page)").fill("3")
    page.get_by_label("k (per page)").press("Enter")
    expect(main(page).get_by_text("Results 1–3", exact=False)).to_be_visible()
    settle(page)
    before = card_ids(page)
    for title in ("Grounding", "Map", "About", "Search"):
        go(page, title)
    expect(page.get_by_label("Free text")).to_have_value("pleural effusion")
    expect(main(page).get_by_text("Results 1–3", exact=False)).to_be_visible()
    assert card_ids(page) == before and len(before) == 3
    assert "q=pleural+effusion" in page.url and "k=3" in page.url


def test_grounding_state_survives_other_pages(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "grounding?gcase=case3", expect_text="global similarity")
    phrases = page.get_by_label("Phrase(s)", exact=False)
    phrases.fill("left effusion; cardiomegaly")
    phrases.press("Enter")
    settle(page)
    go(page, "Search")
    go(page, "Grounding")
    expect(page.get_by_label("Phrase(s)", exact=False)).to_have_value("left effusion; cardiomegaly")
    expect(main(page).get_by_text("global similarity")).to_have_count(2)
    assert "gcase=case3" in page.url and "phrases=left+effusion" in page.url


def test_map_state_survives_other_pages(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "map", expect_text="Colour by")
    main(page).get_by_text("reports", exact=True).click()
    settle(page)
    go(page, "Search")
    go(page, "Map")
    expect(main(page).get_by_role("radio", name="reports")).to_be_checked()
    expect(main(page).get_by_text("of 7 reports embeddings", exact=False)).to_be_visible()
    assert "emb=reports" in page.url


def test_link_reproduces_search_view(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion&k=3", expect_text="matching")
    first_page = card_ids(page)
    main(page).get_by_role("button", name="Next page").click()
    settle(page)
    second_page = card_ids(page)
    link = page.url
    assert "page=2" in link and not set(first_page) & set(second_page)
    fresh = page.context.browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = fresh.new_page()
        other.goto(link)
        settle(other)
        expect(main(other).get_by_text("Results 4–6", exact=False)).to_be_visible()
        assert card_ids(other) == second_page
    finally:
        fresh.close()


def test_link_reproduces_grounding_view(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "grounding?gcase=case5&phrases=edema%3B+opacity&cmap=viridis&fit=1",
             expect_text="global similarity")
    expect(main(page).get_by_text("global similarity")).to_have_count(2)
    expect(main(page).get_by_role("combobox", name="Case")).to_have_value("case5")
    expect(page.get_by_label("Phrase(s)", exact=False)).to_have_value("edema; opacity")
    expect(page.get_by_role("checkbox", name="Fit range to each map")).to_be_checked()
    expect(main(page).get_by_role("combobox", name="Colour map")).to_have_value("viridis")


def test_link_reproduces_map_view(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "map?emb=reports&colour=labels", expect_text="Colour by")
    expect(main(page).get_by_role("radio", name="reports")).to_be_checked()
    key = main(page).get_by_text(re.compile(r"^Effusion \(\d+\)$")).first  # the colour key under the map
    expect(key).to_be_visible()


def test_back_and_forward_step_through_searches(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, expect_text="Type a query")
    search(page, "pleural effusion")
    search(page, "cardiomegaly")
    page.go_back()
    settle(page)
    expect(page.get_by_label("Free text")).to_have_value("pleural effusion")
    expect(main(page).get_by_text("“pleural effusion”", exact=False)).to_be_visible()
    page.go_forward()
    settle(page)
    expect(page.get_by_label("Free text")).to_have_value("cardiomegaly")
    expect(main(page).get_by_text("“cardiomegaly”", exact=False)).to_be_visible()


def test_back_returns_to_the_previous_page_in_one_step(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, expect_text="Type a query")
    search(page, "pleural effusion")
    go(page, "Grounding")
    page.go_back()
    settle(page)
    expect(page.get_by_label("Free text")).to_have_value("pleural effusion")
    assert "/grounding" not in page.url


def _curate_view(page, url: str) -> None:  # type: ignore[no-untyped-def]
    """Curate through the sidebar: the Outliers check, curator "ana", only not yet reviewed cases."""
    open_app(page, url, expect_text="Type a query")
    go(page, "Curate")
    main(page).locator('[data-testid="stSelectbox"]').filter(has_text="Check").click()
    page.get_by_role("option", name="Outliers").click()
    settle(page)
    box = page.get_by_label("Curator", exact=True)
    box.fill("ana")
    box.press("Enter")
    settle(page)
    main(page).get_by_text("Not yet reviewed").click()
    page.wait_for_url(lambda u: "c_check=outliers" in u and "c_curator=ana" in u and "c_show=open" in u)
    settle(page)


def _shows_curate(page) -> None:  # type: ignore[no-untyped-def]
    expect(main(page).get_by_role("combobox", name="Check")).to_have_value("Outliers")
    expect(page.get_by_label("Curator", exact=True)).to_have_value("ana")
    expect(main(page).get_by_role("radio", name="Not yet reviewed")).to_be_checked()
    expect(main(page).get_by_text("Thresholds: ", exact=False)).to_be_visible()


def test_link_reproduces_curate_view(page, app_server) -> None:
    url, _ = app_server
    _curate_view(page, url)
    fresh = page.context.browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = fresh.new_page()
        other.goto(page.url)
        settle(other)
        _shows_curate(other)
    finally:
        fresh.close()


def test_curate_state_survives_other_pages(page, app_server) -> None:
    url, _ = app_server
    _curate_view(page, url)
    go(page, "Search")
    go(page, "Map")
    go(page, "Curate")
    _shows_curate(page)


def test_back_and_forward_across_pages_restore_curate(page, app_server) -> None:
    url, _ = app_server
    _curate_view(page, url)
    go(page, "Search")
    page.go_back()
    settle(page)
    _shows_curate(page)
    page.go_forward()
    settle(page)
    expect(page.get_by_label("Free text")).to_be_visible()
    assert "/curate" not in page.url

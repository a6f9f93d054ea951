"""Chromium: user and corpus text is shown literally (never as Markdown or HTML), no request leaves the app's origin,
and images carry alt text."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import HOSTILE, go, main, open_app, search, settle

pytestmark = pytest.mark.browser


def no_live_payload(page) -> None:
    """No link to the payload's site, no injected image, no bold from ``**``."""
    expect(page.locator('a[href*="evil"]')).to_have_count(0)
    expect(page.locator('img[src="x"]')).to_have_count(0)
    expect(main(page).locator("strong", has_text="bold")).to_have_count(0)


def test_markdown_payload_in_the_url_is_literal(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=" + quote_plus(HOSTILE), expect_text="matching")
    expect(main(page).get_by_text("[Click here](https://", exact=False).first).to_be_visible()
    no_live_payload(page)


def test_markdown_payload_as_phrase_is_literal(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "grounding?phrases=" + quote_plus(HOSTILE.replace(";", ",")), expect_text="global similarity")
    expect(main(page).get_by_text("[Click here](https://", exact=False).first).to_be_visible()
    no_live_payload(page)


def test_markdown_payload_in_a_report_is_literal(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion&open=case4", expect_text="Metadata")
    expect(page.get_by_role("dialog").get_by_text("[Click here](https://", exact=False).first).to_be_visible()
    no_live_payload(page)
    page.get_by_role("dialog").get_by_role("button", name="Search with report").click()
    settle(page)
    no_live_payload(page)


def test_no_request_leaves_the_app_origin(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, expect_text="Type a query")
    search(page, "pleural effusion")
    for title in ("Grounding", "Map", "About", "Search"):
        go(page, title)
    page.wait_for_load_state("networkidle")
    foreign = sorted({r for r in page.requests if not r.startswith(url) and not r.startswith(("data:", "blob:"))})
    assert not foreign, foreign


def test_images_have_alt_text(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion", expect_text="matching")
    expect(main(page).locator("img").first).to_be_visible()
    alts = main(page).locator("img").evaluate_all("els => els.map(e => e.getAttribute('alt') || '')")
    assert alts and all(a.strip() for a in alts), alts


def test_unknown_case_message_names_no_server_path(page, app_server) -> None:
    url, root = app_server
    open_app(page, url, "?mode=case&case=no-such-case", expect_text="no-such-case")
    text = main(page).inner_text()
    assert str(root) not in text and "/tmp" not in text

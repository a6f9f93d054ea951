"""Chromium: result cards show a case's whole id at 1280 and 390 px, and the case dialog names the case once in its
title and offers "right-click" only where a pointer can hover."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import DESKTOP, PHONE, main, open_app

pytestmark = pytest.mark.browser

LONG_ID = "216a8b2c-0f3e-4d9a-b7c1-5e6f7a8b9c0d.dcm"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_a_long_id_shows_in_full_on_its_card(page, app_server, viewport) -> None:
    url, _ = app_server
    page.set_viewport_size(viewport)
    open_app(page, url, "?q=effusion", expect_text="matching")
    line = main(page).locator("p.cxr-hit").first
    expect(line).to_be_visible()
    # the card line as a corpus with long ids draws it: it must wrap, not cut the id
    line.evaluate("(el, id) => { el.textContent = '#1 · 0.123 · ' + id; }", LONG_ID)
    shown = line.evaluate("el => ({scroll: el.scrollWidth, client: el.clientWidth, height: el.clientHeight,"
                          " lineHeight: parseFloat(getComputedStyle(el).lineHeight)})")
    assert shown["scroll"] <= shown["client"], shown
    if viewport == DESKTOP:
        assert shown["height"] >= 2 * shown["lineHeight"] - 1, shown  # a narrow card: the id on further lines


def _dialog(browser, url: str, **context) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(**context)
    try:
        page = ctx.new_page()
        open_app(page, url, "?q=effusion&open=case2", expect_text="matching")
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_text("Case case2", exact=True)).to_have_count(1)
        hint = dialog.get_by_text("right-click to open full size", exact=False)
        if context.get("has_touch"):
            expect(hint).to_be_hidden()
        else:
            expect(hint).to_be_visible()
        expect(dialog.get_by_text(" × ", exact=False).first).to_be_visible()  # the size stays on every device
    finally:
        ctx.close()


def test_dialog_title_and_right_click_hint_on_desktop(browser, app_server) -> None:
    _dialog(browser, app_server[0], viewport=DESKTOP)


def test_no_right_click_hint_on_a_phone(browser, app_server) -> None:
    _dialog(browser, app_server[0], viewport=PHONE, is_mobile=True, has_touch=True)

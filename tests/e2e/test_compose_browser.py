"""End-to-end in Chromium at 1280x800 and 390x844: a composed query explained, a feedback round that Back undoes,
hits added to a collection, and the Collections page showing and exporting it."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

from cxr_explorer.retrieval.collections.store import Collection
from tests.e2e.helpers import DESKTOP, PHONE, card_ids, main, open_app, settle

VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_composed_query_feedback_round_and_collection(page: Any, app_server: tuple[str, Path], size: str) -> None:
    from playwright.sync_api import expect

    url, root = app_server
    page.set_viewport_size(VIEWPORTS[size])
    open_app(page, url, "?q=pleural+effusion&not=pneumothorax&w=0.5", expect_text="matching")
    before = card_ids(page)
    main(page).get_by_text("Why these hits").click()
    expect(main(page).locator('[data-testid="stDataFrame"]').first).to_be_visible()

    relevant = main(page).locator('[data-testid="stMultiSelect"]').filter(has_text="Relevant").first
    relevant.locator("input").click()
    page.keyboard.type(before[-1])
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    expect(relevant.get_by_text(before[-1], exact=True)).to_be_visible()
    main(page).get_by_role("button", name="Re-rank with these marks").click()
    expect(page).to_have_url(re.compile(r"rel=" + before[-1]), timeout=60_000)  # a same-document URL change
    settle(page)
    assert card_ids(page)[0] == before[-1]  # the case marked relevant is pinned first
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"rel="), timeout=60_000)
    settle(page)
    assert card_ids(page) == before  # Back undoes the round

    name = f"walk {size}"
    main(page).get_by_label("Collection", exact=True).fill(name)
    main(page).get_by_role("button", name="Add", exact=True).click()
    expect(main(page).get_by_text("Added", exact=False).first).to_be_visible()
    members = Collection(root / "bundle", name).members()
    assert list(members) == before and {e.source for e in members.values()} == {"query"}

    open_app(page, url, f"collections?coll={name.replace(' ', '+')}", expect_text="Export")
    expect(main(page).get_by_text(f"{name}: {len(before)} case(s)")).to_be_visible()
    with page.expect_download() as dl:
        main(page).get_by_role("button", name="Manifest CSV").click()
    with open(dl.value.path(), newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["id"] for r in rows) == sorted(before) and {"image_path", "id", "report"} <= set(rows[0])

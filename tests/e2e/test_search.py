"""Chromium: the Search page's case dialog, facets, long queries, empty results, exports and uploads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import LONG_REPORT, card_ids, main, open_app, search, settle
from tests.helpers.synthetic import draw_image

pytestmark = pytest.mark.browser


def test_open_case_dialog_is_inside_the_viewport(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion", expect_text="matching")
    ids = card_ids(page)
    last = main(page).get_by_role("button", name="Open").nth(len(ids) - 1)
    last.scroll_into_view_if_needed()
    last.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text(f"Case {ids[-1]}", exact=False)).to_be_visible()
    box = dialog.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] < 800 / 2
    expect(dialog.get_by_role("button", name="Ground this case")).to_be_in_viewport()


def test_semicolon_labels_are_filtered_with_counts(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion", expect_text="matching")
    page.get_by_text("Options and filters").click()
    labels = main(page).locator('[data-testid="stMultiSelect"]').filter(has_text="labels")
    labels.locator("input").click()
    page.keyboard.type("Consol")
    option = page.get_by_role("option", name="Consolidation (1)")  # a part of "Pneumonia;Consolidation", counted
    expect(option).to_be_visible()
    expect(page.get_by_role("option", name="Pneumonia;Consolidation", exact=False)).to_have_count(0)
    page.keyboard.press("Escape")
    open_app(page, url, "?q=effusion&f_labels=Consolidation", expect_text="matching")
    assert card_ids(page) == ["case1"]  # "Pneumonia;Consolidation" matches its part


def test_empty_value_is_a_selectable_facet(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion&f_labels=%28empty%29", expect_text="matching")
    assert card_ids(page) == ["case2"]


def test_empty_result_names_the_filter(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion&target=reports&f_labels=%28empty%29", expect_text="No results")
    expect(main(page).get_by_text("the filter on “labels” matches no reports", exact=False)).to_be_visible()


def test_long_report_is_a_query(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion", expect_text="matching")
    search(page, LONG_REPORT)
    expect(main(page).get_by_text("Results 1–8", exact=False)).to_be_visible()
    expect(main(page).get_by_text("tokens long")).to_have_count(0)


def test_search_with_a_long_report_from_the_case_view(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?open=case6", expect_text="Search with report")
    page.get_by_role("dialog").get_by_role("button", name="Search with report").click()
    expect(main(page).get_by_text("Results 1–8", exact=False)).to_be_visible()
    expect(page.get_by_label("Free text")).to_have_value(LONG_REPORT)
    expect(main(page).get_by_text("tokens long")).to_have_count(0)


def test_export_is_named_after_the_query_and_carries_its_context(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=Pleural+effusion%21&k=3&f_view=PA", expect_text="matching")
    with page.expect_download() as dl:
        main(page).get_by_role("button", name="Download results JSON").click()
    assert dl.value.suggested_filename == "cxr-explorer-results-pleural-effusion.json"
    data = json.loads(Path(dl.value.path()).read_text())
    ctx = data["context"]
    assert ctx["query"] == "Pleural effusion!" and ctx["k"] == 3 and ctx["filters"] == {"view": ["PA"]}
    assert ctx["bundle"] == "bundle" and ctx["model"] == "tiny-random" and ctx["date"]
    assert all(row["view"] == "PA" for row in data["rows"]) and data["rows"]
    with page.expect_download() as dl:
        main(page).get_by_role("button", name="Download results CSV").click()
    assert dl.value.suggested_filename == "cxr-explorer-results-pleural-effusion.csv"
    assert Path(dl.value.path()).read_text().startswith("# mode:")


def test_ground_this_case_carries_the_query(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=left+effusion&open=case5", expect_text="Ground this case")
    page.get_by_role("dialog").get_by_role("button", name="Ground this case").click()
    expect(page.get_by_label("Phrase(s)", exact=False)).to_have_value("left effusion")
    expect(main(page).get_by_role("combobox", name="Case")).to_have_value("case5")
    assert "/grounding" in page.url and "gcase=case5" in page.url


def test_upload_searches_and_is_kept_for_the_session(page, app_server, tmp_path) -> None:
    url, _ = app_server
    upload = tmp_path / "upload.png"
    draw_image(99, 120, 100).save(upload)
    open_app(page, url, expect_text="Type a query")
    main(page).locator('[data-testid="stButtonGroup"]').get_by_text("Image", exact=True).click()
    page.locator('input[type="file"]').set_input_files(str(upload))
    expect(main(page).get_by_text("image query")).to_be_visible()
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="About").click()
    settle(page)
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Search").click()
    expect(main(page).get_by_text("image query")).to_be_visible()


def test_retrieve_then_ground_overlays(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion&ground=1", expect_text="shared range")
    expect(main(page).get_by_role("img", name="Chest X-ray case0", exact=False)).to_be_visible()


def test_eight_image_hits_fit_below_the_query_box(page, app_server) -> None:
    url, _ = app_server
    open_app(page, url, "?q=effusion", expect_text="matching")
    assert len(card_ids(page)) == 8
    page.get_by_label("Free text").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    boxes = [img.bounding_box() for img in main(page).get_by_role("img", name="Chest X-ray", exact=False).all()]
    inside = [b for b in boxes if b and b["y"] >= 0 and b["y"] + b["height"] <= 800]
    assert len(inside) >= 8, boxes
    for name in ("Open", "Similar"):
        button = main(page).get_by_role("button", name=name, exact=True).first
        assert button.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), f"{name} is cut"

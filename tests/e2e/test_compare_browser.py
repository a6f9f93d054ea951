"""End-to-end: the Compare page of the real app in headless Chromium, on a tiny-random-t bundle built with priors.

One behaviour per test, each in its own browser page (its own Streamlit session) on one shared server: the first
case with a prior opened from the sidebar, a selection written back to the URL, a shared link showing a case
(timeline, phrases grounded on current and prior, interval-change table), phrases written to the URL, phone width,
and two uploads. Screenshots go to pytest's tmp folder (``CXR_COMPARE_SHOTS=/tmp/shots`` copies them there too).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.e2e.helpers import CHROMIUM, TIMEOUT_MS, go, main, open_app, own_pages, serve, settle
from tests.helpers.synthetic import draw_image

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM}"),
]


def build_bundle(root: Path) -> Path:
    """Patient A: days 0, 2, 5; patient B: days 1, 3 (tiny-random-t, priors by patient and day)."""
    from cxr_explorer.index.corpus import CorpusOptions
    from cxr_explorer.index.priors import PriorOptions
    from cxr_explorer.index.runner import BuildConfig, run_build

    rows = [("a0", "A", "covid_pA_d0"), ("a2", "A", "covid_pA_d2"), ("a5", "A", "covid_pA_d5"),
            ("b1", "B", "covid_pB_d1"), ("b3", "B", "covid_pB_d3")]
    corpus = root / "corpus"
    corpus.mkdir()
    for i, (name, _, _) in enumerate(rows):
        draw_image(30 + i, 120, 110).save(corpus / f"{name}.png")
    pd.DataFrame([{"image_path": f"{n}.png", "image_id": n, "patient_id": p, "study": s, "report": f"Study {n}."}
                  for n, p, s in rows]).to_csv(corpus / "corpus.csv", index=False)
    out = root / "bundle"
    run_build(BuildConfig(corpus=corpus / "corpus.csv", out=out, model="tiny-random-t", device="cpu", workers=1,
                          corpus_options=CorpusOptions(id_col="image_id"), progress="none",
                          priors=PriorOptions(patient_col="patient_id", order_col="study")))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("compare")
    bundle = build_bundle(root)
    with serve([bundle], root / "server.log") as url:
        yield url, root


@contextmanager
def compare_page(server: tuple[str, Path], chromium: Any, path: str = "",
                 viewport: tuple[int, int] = (1280, 800)) -> Iterator[Any]:
    """A new page (its own session) at ``url/path``, closed afterwards."""
    from playwright.sync_api import expect

    url, _ = server
    expect.set_options(timeout=TIMEOUT_MS)
    with own_pages(chromium) as browser:
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(f"{url}/{path}")
            yield page
        finally:
            page.close()


def shot(page: Any, server: tuple[str, Path], name: str) -> None:
    """A screenshot into the test's tmp folder (and ``$CXR_COMPARE_SHOTS`` when set, to look at it)."""
    settle(page)
    path = server[1] / name
    page.screenshot(path=str(path))
    if os.environ.get("CXR_COMPARE_SHOTS"):
        shots = Path(os.environ["CXR_COMPARE_SHOTS"])
        shots.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, shots / name)


def test_sidebar_link_opens_the_first_case_with_a_prior(server: tuple[str, Path], chromium: Any) -> None:
    from playwright.sync_api import expect

    with compare_page(server, chromium) as page:
        expect(page.get_by_text("NOT A REAL MODEL")).to_be_visible()
        page.get_by_role("link", name="Compare").click()
        expect(page.get_by_text("Case with a prior (3)")).to_be_visible()
        expect(page.get_by_text("current · a2")).to_be_visible()
        assert "cmp_case" not in page.url  # the first case is the default: no history entry of its own


def test_choosing_a_case_writes_it_to_the_url(server: tuple[str, Path], chromium: Any) -> None:
    from playwright.sync_api import expect

    with compare_page(server, chromium, "compare") as page:
        expect(page.get_by_text("current · a2")).to_be_visible()
        page.locator('[data-testid="stSelectbox"]').click()
        page.get_by_role("option", name="a5", exact=True).click()
        page.wait_for_url("**cmp_case=a5**")
        expect(page.get_by_text("current · a5")).to_be_visible()


def test_a_link_shows_the_case_with_its_prior_timeline_maps_and_interval_change(server: tuple[str, Path],
                                                                                  chromium: Any) -> None:
    from playwright.sync_api import expect

    with compare_page(server, chromium, "compare?cmp_case=a5") as page:
        expect(page.get_by_text("Timeline (3 studies, oldest first)")).to_be_visible()
        expect(page.get_by_text("current · a5")).to_be_visible()
        expect(page.get_by_text("prior · a2")).to_be_visible()
        expect(page.get_by_text("current: global similarity")).to_have_count(2)  # the two default phrases
        expect(page.get_by_text("prior: global similarity")).to_have_count(2)
        expect(page.get_by_text("Interval change (zero-shot)")).to_be_visible()
        expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
        shot(page, server, "compare-case-1280.png")
        page.get_by_text("Interval change (zero-shot)").scroll_into_view_if_needed()
        shot(page, server, "compare-case-table-1280.png")


def test_phrases_change_the_maps_and_the_url(server: tuple[str, Path], chromium: Any) -> None:
    from playwright.sync_api import expect

    with compare_page(server, chromium, "compare?cmp_case=a5") as page:
        expect(page.get_by_text("current: global similarity")).to_have_count(2)
        page.get_by_label("Phrase(s)", exact=False).fill("edema")
        page.keyboard.press("Enter")
        settle(page)
        expect(page.get_by_text("current: global similarity")).to_have_count(1)
        expect(page.get_by_text("Phrase: edema")).to_be_visible()
        page.wait_for_url("**cmp_phrases=edema**")


def test_phone_width_shows_the_case_and_its_prior(server: tuple[str, Path], chromium: Any) -> None:
    from playwright.sync_api import expect

    with compare_page(server, chromium, "compare?cmp_case=a5", viewport=(390, 844)) as page:
        expect(page.get_by_text("current · a5")).to_be_visible()
        expect(page.get_by_text("prior · a2")).to_be_visible()
        shot(page, server, "compare-case-390.png")


def test_two_uploads_are_compared_without_a_timeline(server: tuple[str, Path], chromium: Any) -> None:
    from playwright.sync_api import expect

    root = server[1]
    with compare_page(server, chromium, "compare") as page:
        expect(page.get_by_text("current · a2")).to_be_visible()
        page.locator('[data-testid="stRadio"]').get_by_text("Two uploads").click()
        expect(page.get_by_text("Upload the current image")).to_be_visible()
        page.wait_for_url("**cmp_src=upload**")
        inputs = page.locator('input[type="file"]')
        inputs.nth(0).set_input_files(str(root / "corpus" / "b3.png"))
        settle(page)
        inputs.nth(1).set_input_files(str(root / "corpus" / "b1.png"))
        expect(page.get_by_text("Interval change (zero-shot)")).to_be_visible()
        expect(page.get_by_text("prior: global similarity").first).to_be_visible()
        expect(page.get_by_text("Timeline (")).to_have_count(0)
        page.get_by_text("Interval change (zero-shot)").scroll_into_view_if_needed()
        shot(page, server, "compare-uploads-1280.png")


def _compare_view(page: Any, url: str, case: str, phrases: str) -> None:
    """Open Compare through the sidebar, pick ``case`` and type ``phrases``; waits until the URL holds both."""
    from playwright.sync_api import expect

    open_app(page, url, expect_text="NOT A REAL MODEL")
    go(page, "Compare")
    page.locator('[data-testid="stSelectbox"]').click()
    page.get_by_role("option", name=case, exact=True).click()
    expect(page.get_by_text(f"current · {case}")).to_be_visible()
    settle(page)
    box = page.get_by_label("Phrase(s)", exact=False)
    box.fill(phrases)
    box.press("Enter")
    page.wait_for_url(lambda u: f"cmp_case={case}" in u and "cmp_phrases=" in u)
    settle(page)


def _shows_compare(page: Any, case: str, phrases: str) -> None:
    from playwright.sync_api import expect

    expect(main(page).get_by_role("combobox", name="Case with a prior", exact=False)).to_have_value(case)
    expect(page.get_by_label("Phrase(s)", exact=False)).to_have_value(phrases)
    expect(page.get_by_text(f"current · {case}")).to_be_visible()
    expect(page.get_by_text("current: global similarity")).to_have_count(len(phrases.split(";")))


def test_compare_link_reproduces_the_view_in_a_fresh_browser(server: tuple[str, Path], chromium: Any) -> None:
    url, _ = server
    with own_pages(chromium) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        _compare_view(page, url, "b3", "edema; nodule")
        link = page.url
        fresh = browser.new_page(viewport={"width": 1280, "height": 800})  # its own context: a new session
        fresh.goto(link)
        settle(fresh)
        _shows_compare(fresh, "b3", "edema; nodule")


def test_compare_state_survives_a_trip_to_search(server: tuple[str, Path], chromium: Any) -> None:
    url, _ = server
    with own_pages(chromium) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        _compare_view(page, url, "a5", "edema")
        go(page, "Search")
        go(page, "Compare")
        _shows_compare(page, "a5", "edema")
        assert "cmp_case=a5" in page.url and "cmp_phrases=edema" in page.url


def test_back_and_forward_across_pages_restore_compare(server: tuple[str, Path], chromium: Any) -> None:
    from playwright.sync_api import expect

    url, _ = server
    with own_pages(chromium) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        _compare_view(page, url, "a5", "edema")
        go(page, "Search")
        expect(page.get_by_label("Free text")).to_be_visible()
        page.go_back()
        settle(page)
        _shows_compare(page, "a5", "edema")
        page.go_forward()
        settle(page)
        expect(page.get_by_label("Free text")).to_be_visible()
        assert "/compare" not in page.url


def test_two_uploads_keep_the_phrases_in_use_through_a_bad_prior_and_a_source_switch(server: tuple[str, Path],
                                                                                      chromium: Any) -> None:
    from playwright.sync_api import expect

    root = server[1]
    (root / "not-an-image.png").write_bytes(b"this is not an image")
    with compare_page(server, chromium, "compare") as page:
        expect(page.get_by_text("current · a2")).to_be_visible()
        page.locator('[data-testid="stRadio"]').get_by_text("Two uploads").click()
        expect(page.get_by_text("Upload the current image")).to_be_visible()
        box = page.get_by_label("Phrase(s)", exact=False)
        expect(box).to_have_value("pleural effusion; consolidation")  # shown before any image, as used
        inputs = page.locator('input[type="file"]')
        inputs.nth(0).set_input_files(str(root / "corpus" / "b3.png"))
        settle(page)
        inputs.nth(1).set_input_files(str(root / "corpus" / "b1.png"))
        expect(page.get_by_text("Phrase: consolidation")).to_be_visible()
        expect(box).to_have_value("pleural effusion; consolidation")
        box.fill("cardiomegaly")
        box.press("Enter")
        page.wait_for_url("**cmp_phrases=cardiomegaly**")
        expect(page.get_by_text("Phrase: cardiomegaly")).to_be_visible()
        settle(page)
        inputs.nth(1).set_input_files(str(root / "not-an-image.png"))
        expect(page.get_by_text("Cannot read the prior image")).to_be_visible()
        expect(box).to_have_value("cardiomegaly")
        inputs.nth(1).set_input_files(str(root / "corpus" / "b1.png"))
        expect(page.get_by_text("Phrase: cardiomegaly")).to_be_visible()
        expect(box).to_have_value("cardiomegaly")
        page.locator('[data-testid="stRadio"]').get_by_text("Corpus case").click()
        expect(page.get_by_text("current · a2")).to_be_visible()
        expect(page.get_by_text("Phrase: cardiomegaly")).to_be_visible()
        expect(box).to_have_value("cardiomegaly")
        assert "cmp_phrases=cardiomegaly" in page.url
        page.locator('[data-testid="stRadio"]').get_by_text("Two uploads").click()
        expect(page.get_by_text("Upload the current image")).to_be_visible()
        expect(box).to_have_value("cardiomegaly")
        assert "cmp_phrases=cardiomegaly" in page.url

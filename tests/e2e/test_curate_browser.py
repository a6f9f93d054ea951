"""End-to-end: the Curate page in headless Chromium, one behaviour per test: two sessions (two curators) mark cases at
the same time and both decisions reach the review files; a decision survives a SIGKILL of the app; the exports leave
the excluded cases out. Each test serves its own copy of one fault bundle. Screenshots go to a temporary folder
(``$CXR_EXPLORER_SHOTS`` to keep them)."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.curate.review import ReviewLog, read_decisions, review_dir
from tests.e2e.helpers import CHROMIUM, TIMEOUT_MS, free_port, own_pages, settle, wait_healthy
from tests.helpers import curate_bundle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM} (apt-get install "
                       "chromium, or set CXR_EXPLORER_CHROMIUM)"),
]


def start_app(bundle: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = shutil.which("cxr-explorer") or str(Path(sys.executable).parent / "cxr-explorer")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([exe, "app", str(bundle), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/_stcore/health", proc)
    return proc, url


def open_curate(page, url: str, curator: str, check: str = "Label issues") -> None:  # type: ignore[no-untyped-def]
    """From the app's root to the Curate page through the sidebar link, then choose the check and type the curator
    name; the page writes both into the URL."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.get_by_text("Type a query", exact=False)).to_be_visible()  # the app (not a bare page) is up
    settle(page)
    link = page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Curate")
    expand = page.locator('[data-testid="stExpandSidebarButton"]')
    phone = expand.count() > 0 and expand.is_visible()  # phone width: the sidebar starts collapsed
    if phone:
        expand.click()
    link.click()
    expect(page.get_by_role("heading", name="Curate")).to_be_visible()
    settle(page)
    collapse = page.locator('[data-testid="stSidebarCollapseButton"] button')
    if phone and collapse.is_visible():  # it stays open over the page on a phone
        collapse.click()
        expect(page.locator('[data-testid="stSidebar"]')).to_have_attribute("data-collapsed", "true")
        page.wait_for_timeout(400)  # its slide-out transition, which would take the dropdown's first click
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Check").click()
    page.get_by_role("option", name=check).click()
    settle(page)
    box = page.get_by_label("Curator", exact=True)
    box.fill(curator)
    box.press("Enter")
    page.wait_for_url(f"**c_curator={curator}**")
    settle(page)


def kill9(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def fault_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-case fault bundle, built once; each test serves its own copy (decisions are written beside it)."""
    return curate_bundle.build(tmp_path_factory.mktemp("curate") / "bundle", n=200, rate=0.05).root


@dataclass
class RunningApp:
    """The app serving one test's copy of the fault bundle."""

    bundle: Path
    log: Path
    proc: subprocess.Popen
    url: str

    def restart_after_sigkill(self) -> None:
        """SIGKILL the app (no chance to flush anything) and start it again on a new port."""
        kill9(self.proc)
        self.proc, self.url = start_app(self.bundle, self.log)


@pytest.fixture()
def app(fault_bundle: Path, tmp_path: Path) -> Iterator[RunningApp]:
    """The app started on this test's copy of the fault bundle; killed at the end."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    bundle = tmp_path / "bundle"
    shutil.copytree(fault_bundle, bundle)
    running = RunningApp(bundle, tmp_path / "server.log", *start_app(bundle, tmp_path / "server.log"))
    try:
        yield running
    finally:
        kill9(running.proc)


def shots_dir(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("CXR_EXPLORER_SHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def new_page(browser: Any, width: int, height: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT_MS)
    return page


def test_two_curators_decide_at_the_same_time(app: RunningApp, chromium: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    bundle, url = app.bundle, app.url
    with own_pages(chromium) as browser:
        desk, phone = new_page(browser, 1280, 800), new_page(browser, 390, 844)
        open_curate(desk, url, "ana")
        open_curate(phone, url, "ben")
        for page in (desk, phone):
            expect(page.get_by_text("Research use only", exact=False).first).to_be_visible()
            expect(page.get_by_text("#1  ", exact=False).first).to_be_visible()
            assert "c_check=labels" in page.url
        first = desk.get_by_text("#1  ", exact=False).first.inner_text().split()[1]
        second = desk.get_by_text("#2  ", exact=False).first.inner_text().split()[1]
        desk.screenshot(path=str(shots_dir(tmp_path) / "curate-desktop.png"))
        phone.screenshot(path=str(shots_dir(tmp_path) / "curate-phone.png"))
        # both sessions decide at once: ana excludes #1, ben excludes #2
        desk.get_by_role("button", name="exclude", exact=True).nth(0).click(no_wait_after=True)
        phone.get_by_role("button", name="exclude", exact=True).nth(1).click(no_wait_after=True)
        expect(desk.get_by_text("decision: EXCLUDE by ana")).to_be_visible()
        expect(phone.get_by_text("decision: EXCLUDE by ben")).to_be_visible()
        settle(desk)
    saved = {(d.curator, d.id) for d in read_decisions(review_dir(bundle))[0]}
    assert saved == {("ana", first), ("ben", second)}
    assert not any(p.name.endswith(".jsonl") for p in bundle.iterdir())  # beside the bundle, never inside


def test_a_decision_survives_a_sigkill_of_the_app(app: RunningApp, chromium: Any) -> None:
    from playwright.sync_api import expect

    with own_pages(chromium) as browser:
        desk = new_page(browser, 1280, 800)
        open_curate(desk, app.url, "ana")
        desk.get_by_role("button", name="exclude", exact=True).nth(0).click()
        expect(desk.get_by_text("decision: EXCLUDE by ana")).to_be_visible()
        app.restart_after_sigkill()
        open_curate(desk, app.url, "ana")
        expect(desk.get_by_text("decision: EXCLUDE by ana")).to_be_visible()
        expect(desk.get_by_text("1 case(s) excluded by 1 curator(s)", exact=False)).to_be_visible()


def test_exports_leave_the_excluded_cases_out(app: RunningApp, chromium: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    bundle, url = app.bundle, app.url
    first, second = (str(i) for i in Bundle.open(bundle).metadata["id"][:2])
    ReviewLog(review_dir(bundle), "ana").append("labels", first, "exclude")
    ReviewLog(review_dir(bundle), "ben").append("outliers", second, "exclude")
    with own_pages(chromium) as browser:
        desk = new_page(browser, 1280, 800)
        open_curate(desk, url, "ana")
        expect(desk.get_by_text("2 case(s) excluded by 2 curator(s)", exact=False)).to_be_visible()
        with desk.expect_download() as dl:
            desk.get_by_role("button", name="Cleaned manifest CSV").click()
        rows = list(csv.DictReader(open(dl.value.path(), encoding="utf-8")))
        assert len(rows) == 198 and not {first, second} & {r["id"] for r in rows}
        with desk.expect_download() as dl:
            desk.get_by_role("button", name="Exclusion list CSV").click()
        excl = list(csv.DictReader(open(dl.value.path(), encoding="utf-8")))
        assert {r["id"] for r in excl} == {first, second}
        settle(desk)
        desk.screenshot(path=str(shots_dir(tmp_path) / "curate-exports.png"), full_page=True)

"""End-to-end: the real app (``cxr-explorer app``) driven in headless Chromium with Playwright.

Search by text, open a case, retrieve-then-ground, export, upload an image, ground phrases, box and lasso selections
on the map, the About page; screenshots go to ``docs/screenshots/``. Skipped when Chromium is absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.webapp import synthetic_bundle

if TYPE_CHECKING:
    from playwright.sync_api import FloatRect

CHROMIUM = os.environ.get("CXR_EXPLORER_CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage"]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM} (apt-get install "
                       "chromium, or set CXR_EXPLORER_CHROMIUM)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("e2e")
    bundle = synthetic_bundle.build(root)
    second = root / "second"
    shutil.copytree(bundle, second)
    port = free_port()
    exe = shutil.which("cxr-explorer") or str(Path(sys.executable).parent / "cxr-explorer")
    log = open(root / "server.log", "wb")  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen([exe, "app", str(bundle), str(second), "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc)
        yield f"http://127.0.0.1:{port}", root
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def drag(page, box: FloatRect, points: list[tuple[float, float]]) -> None:
    """Mouse drag through ``points`` given as fractions of ``box``."""
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def settle(page) -> None:
    """Wait until Streamlit has finished the current run (no 'Running...' status widget)."""
    from playwright.sync_api import expect

    page.wait_for_timeout(500)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=TIMEOUT_MS)
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=TIMEOUT_MS)


def test_app_in_chromium(server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, root = server
    expect.set_options(timeout=TIMEOUT_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    upload = root / "upload.png"
    synthetic_bundle.draw_image(99, 120, 100).save(upload)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(url)
            expect(page.get_by_text("NOT A REAL MODEL")).to_be_visible()
            expect(page.get_by_text("Type a query")).to_be_visible()

            # search by text; the query lands in the URL
            page.get_by_label("Free text").fill("pleural effusion")
            page.get_by_role("button", name="Search", exact=True).click()
            expect(page.get_by_text("8 results")).to_be_visible()
            page.wait_for_url("**q=pleural+effusion**")
            expect(page.get_by_text("similarity", exact=False).first).to_be_visible()
            settle(page)
            page.screenshot(path=str(SHOTS / "search.png"))

            # export the result table
            with page.expect_download() as dl:
                page.get_by_role("button", name="Export CSV").click()
            assert dl.value.suggested_filename == "cxr-explorer-results.csv"
            assert Path(dl.value.path()).read_text().startswith("rank,similarity,id")

            # retrieve-then-ground overlays
            page.get_by_text("Ground the query on every result").click()
            expect(page.get_by_text("on each result, shared range")).to_be_visible()
            settle(page)
            page.screenshot(path=str(SHOTS / "search-grounded.png"))

            # open a case
            page.locator('[data-testid="stMain"]').get_by_role("button", name="Open case").first.click()
            expect(page.get_by_role("heading", name="Case case")).to_be_visible()
            expect(page.get_by_text("Metadata", exact=True)).to_be_visible()
            page.get_by_role("button", name="Close", exact=True).click()
            expect(page.get_by_role("heading", name="Case case")).to_have_count(0)

            # upload an image -> similar images
            page.locator('[data-testid="stButtonGroup"]').get_by_text("Image", exact=True).click()
            page.locator('input[type="file"]').set_input_files(str(upload))
            expect(page.get_by_text("results for image query")).to_be_visible()

            # grounding: two phrases side by side
            page.get_by_role("link", name="Grounding").click()
            expect(page.get_by_text("global similarity").first).to_be_visible()
            phrases = page.get_by_label("Phrase(s)", exact=False)
            phrases.fill("left pleural effusion; cardiomegaly")
            phrases.press("Enter")
            expect(page.get_by_text("global similarity")).to_have_count(2)
            page.get_by_text("Fit range to each map").click()
            page.get_by_text("Isolines (25/50/75 %)").click()
            settle(page)
            page.get_by_text("global similarity").first.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "grounding.png"))

            # map: box and lasso selections list the selected cases
            page.get_by_role("link", name="Map").click()
            plot = page.locator(".js-plotly-plot").first
            expect(plot).to_be_visible()
            expect(page.get_by_text("marks the last text query")).to_be_visible()
            area = plot.locator(".nsewdrag").first
            box = area.bounding_box()
            assert box is not None
            page.locator('.modebar-btn[data-title="Box Select"]').first.click()
            drag(page, box, [(0.02, 0.02), (0.98, 0.98)])
            expect(page.get_by_text("selected cases")).to_be_visible()
            box_text = page.get_by_role("heading", name="selected cases").inner_text()
            page.locator('.modebar-btn[data-title="Lasso Select"]').first.click()
            drag(page, box, [(0.01, 0.01), (0.99, 0.01), (0.99, 0.99), (0.01, 0.99), (0.01, 0.02)])
            expect(page.get_by_role("heading", name="selected cases")).to_be_visible()
            assert int(box_text.split()[0]) >= 1
            with page.expect_download() as dl:
                page.get_by_role("button", name="Export selection CSV").click()
            assert dl.value.suggested_filename == "cxr-explorer-selection.csv"
            settle(page)
            plot.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "map.png"))

            page.get_by_role("link", name="About").click()
            expect(page.get_by_text("Skipped while building: 1 items")).to_be_visible()
            expect(page.get_by_text("Research use only — not for diagnosis.").first).to_be_visible()
            page.screenshot(path=str(SHOTS / "about.png"))

            # the index selector switches bundles
            sidebar = page.locator('[data-testid="stSidebar"]')
            expect(sidebar.get_by_text("Bundle bundle")).to_be_visible()
            sidebar.locator('[data-testid="stSelectbox"]').click()
            page.get_by_role("option", name="second", exact=False).click()
            page.wait_for_url("**bundle=second**")
            expect(sidebar.get_by_text("Bundle second")).to_be_visible()
        finally:
            browser.close()

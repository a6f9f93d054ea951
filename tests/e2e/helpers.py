"""Plain helpers of the Chromium tests: the app server on a free port, Chromium's path and options, the e2e bundle's
reports, and page actions (wait for Streamlit to finish a run, search, open pages, drag on a plot). The fixtures
that use them are in ``tests/e2e/conftest.py``."""

from __future__ import annotations

import contextlib
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
from typing import Any

from tests.helpers.bundles import APP_CASES

CHROMIUM = os.environ.get("CXR_EXPLORER_CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage"]
TIMEOUT_MS = 60_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HOSTILE = "[Click here](https://evil.example/login) <img src=x onerror=alert(1)> **bold** www.evil.example."
LONG_REPORT = " ".join(f"Finding number {i} shows a small nodule in segment {i % 9} of the lung." for i in range(17))
E2E_REPORTS = list(APP_CASES.reports)
E2E_REPORTS[4] = HOSTILE
E2E_REPORTS[6] = LONG_REPORT
E2E_LABELS = [lab.replace("|", ";") for lab in APP_CASES.labels]
E2E_LABELS[6] += ";Pleural effusion with adjacent compressive atelectasis"  # a long value: a wide Map tooltip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
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


@contextlib.contextmanager
def serve(bundles: list[Path], log_path: Path, *extra: str, port: int | None = None) -> Iterator[str]:
    """``cxr-explorer app BUNDLES [EXTRA...]`` on ``port`` (a free one by default), in its own process group (stopped
    with it); yields the base URL."""
    port = port or free_port()
    exe = shutil.which("cxr-explorer") or str(Path(sys.executable).parent / "cxr-explorer")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, "app", *map(str, bundles), "--port", str(port), *extra], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def own_pages(chromium: Any) -> Iterator[Any]:
    """The session's Chromium for a test that opens its own pages (``new_page`` gives each its own context); the
    contexts opened inside are closed on exit."""
    before = list(chromium.contexts)
    try:
        yield chromium
    finally:
        for context in chromium.contexts:
            if context not in before:
                context.close()




def settle(page: Any) -> None:
    """Wait until Streamlit has finished the current run: the app's own script state back at ``notRunning``, no
    running status and no stale elements. The status widget shows only after a few hundred ms and nothing is stale
    after a page switch, so those two alone let a test act while a run is still drawing (and a dropdown opened then
    is closed by the run's next delta)."""
    from playwright.sync_api import expect

    page.wait_for_timeout(400)
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_have_count(1)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0)
    expect(page.locator('[data-stale="true"]')).to_have_count(0)


def main(page: Any) -> Any:
    """The main area (not the sidebar)."""
    return page.locator('[data-testid="stMain"]')


def open_app(page: Any, url: str, path: str = "", expect_text: str = "Research use only") -> None:
    """Open ``url/path`` (path may carry a query) and wait for the first run to finish."""
    from playwright.sync_api import expect

    page.goto(f"{url}/{path}")
    expect(page.get_by_text(expect_text).first).to_be_visible()
    settle(page)


def search(page: Any, text: str) -> None:
    """Type a text query and submit it; waits for the results line."""
    from urllib.parse import quote_plus

    from playwright.sync_api import expect

    page.get_by_label("Free text").fill(text)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(main(page).get_by_text(f"query “{text[:70]}", exact=False).first).to_be_visible()
    page.wait_for_url(lambda u: f"q={quote_plus(text)[:200]}" in u)  # the run has written its state (Back steps)
    settle(page)


def go(page: Any, title: str) -> None:
    """Follow the sidebar link to page ``title``."""
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name=title).click()
    settle(page)


def drag(page: Any, box: dict, points: list[tuple[float, float]]) -> None:
    """Mouse drag through ``points`` given as fractions of ``box``."""
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def card_ids(page: Any) -> list[str]:
    """The ids of the result cards in order (from the ``#rank · similarity · id`` lines)."""
    import re

    from playwright.sync_api import expect

    header = main(page).get_by_text(re.compile(r"^Results? \d+–\d+")).first.inner_text()
    first, last = (int(x) for x in re.findall(r"\d+", header)[:2])
    hits = main(page).locator("p.cxr-hit")
    expect(hits).to_have_count(last - first + 1)
    return [line.split(" · ")[2] for line in hits.all_inner_texts()]

"""Fixtures of the Chromium end-to-end tests: one real app server (``cxr-explorer app``) on a free port serving two
tiny-random bundles built for these tests, and a fresh browser context per test (Debian's Chromium via Playwright).

The e2e bundle differs from the AppTest one where the browser tests need it: ``;``-separated labels, a report that
is a Markdown/HTML payload, and a report of about 600 tokens (over the text encoder's 512). Screenshots, when a test
takes one, go to pytest's temporary folder, never into the repository.
"""

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

import pytest

from tests.webapp import synthetic_bundle

CHROMIUM = os.environ.get("CXR_EXPLORER_CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage"]
TIMEOUT_MS = 60_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HOSTILE = "[Click here](https://evil.example/login) <img src=x onerror=alert(1)> **bold** www.evil.example."
LONG_REPORT = " ".join(f"Finding number {i} shows a small nodule in segment {i % 9} of the lung." for i in range(17))
E2E_REPORTS = list(synthetic_bundle.REPORTS)
E2E_REPORTS[4] = HOSTILE
E2E_REPORTS[6] = LONG_REPORT
E2E_LABELS = [lab.replace("|", ";") for lab in synthetic_bundle.LABELS]


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


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base url, temporary folder) of a running app serving ``bundle`` and its copy ``second``."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CXR_EXPLORER_CHROMIUM)")
    root = tmp_path_factory.mktemp("e2e")
    bundle = synthetic_bundle.build(root, reports=E2E_REPORTS, labels=E2E_LABELS)
    second = root / "second"
    shutil.copytree(bundle, second)
    with serve([bundle, second], root / "server.log") as url:
        yield url, root


@contextlib.contextmanager
def serve(bundles: list[Path], log_path: Path) -> Iterator[str]:
    """``cxr-explorer app BUNDLES`` on a free port, in its own process group (stopped with it); yields the base URL."""
    port = free_port()
    exe = shutil.which("cxr-explorer") or str(Path(sys.executable).parent / "cxr-explorer")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, "app", *map(str, bundles), "--port", str(port)], stdout=log,
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


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium (Playwright's sync API) for the whole session: every browser test opens its pages here,
    since a second ``sync_playwright()`` cannot start while this one runs."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CXR_EXPLORER_CHROMIUM)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def browser(chromium: Any, app_server: tuple[str, Path]) -> Any:
    """The session's Chromium, once the shared app server is up."""
    return chromium


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


@pytest.fixture()
def page(browser, app_server: tuple[str, Path]) -> Iterator[object]:
    """A fresh browser context (its own Streamlit session) at 1280x800; its requests are listed in ``page.requests``."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.requests = []  # type: ignore[attr-defined]
    pg.on("request", lambda r: pg.requests.append(r.url))  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()

"""Fixtures of the Chromium end-to-end tests: one real app server (``cxr-explorer app``) on a free port serving two
tiny-random bundles built for these tests, and a fresh browser context per test (Debian's Chromium via Playwright).

The e2e bundle differs from the AppTest one where the browser tests need it: ``;``-separated labels, a report that
is a Markdown/HTML payload, and a report of about 600 tokens (over the text encoder's 512). Screenshots, when a test
takes one, go to pytest's temporary folder, never into the repository. Plain helpers and constants (the server,
Chromium's path and options, the hostile report) live in ``tests/e2e/helpers.py``. Every test here carries the
``browser`` marker, so ``-m "not browser"`` leaves them out.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import CHROME_ARGS, CHROMIUM, DESKTOP, E2E_LABELS, E2E_REPORTS, TIMEOUT_MS, serve
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.synthetic import tiny_model

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected from this folder ``browser`` (pytest calls this hook with the whole session's
    items, so it picks this folder's by path)."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base url, temporary folder) of a running app serving ``bundle`` and its copy ``second``."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CXR_EXPLORER_CHROMIUM)")
    root = tmp_path_factory.mktemp("e2e")
    bundle = model_bundle(root, tiny_model(), APP_CASES, reports=E2E_REPORTS, labels=E2E_LABELS)
    second = root / "second"
    shutil.copytree(bundle, second)
    with serve([bundle, second], root / "server.log") as url:
        yield url, root


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

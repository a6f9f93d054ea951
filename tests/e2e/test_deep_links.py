"""A page link opened directly (a bookmark, a shared URL) loads with no console error: the browser is told where
the server's root is, so it does not probe ``/<page>/_stcore/health`` and ``host-config`` first (two 404s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import DESKTOP, PHONE, open_app


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_opened_directly_logs_no_console_error(browser: Any, app_server: tuple[str, Path],
                                                          viewport: dict) -> None:
    url, _ = app_server
    for path in ("map", "curate", "grounding", "compare", "about", ""):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        errors: list[str] = []
        failed: list[str] = []
        page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r, failed=failed: failed.append(f"{r.status} {r.url}") if r.status >= 400
                else None)
        try:
            open_app(page, url, path)
            page.wait_for_timeout(500)
            assert errors == [] and failed == [], (path, errors, failed)
        finally:
            context.close()

"""Chromium through a running container (``scripts/container.sh smoke``): a text search draws result cards, a case
opens, "Ground this case" draws a grounding map; no request leaves the app's own address. Prints the time from the
first navigation to the first drawn result list (the time to first search, on a cold server) and exits 1 on any
failure with one line saying which step failed.

    python scripts/container_smoke.py http://127.0.0.1:PORT [QUERY]
"""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import urlparse

CHROMIUM = os.environ.get("CXR_EXPLORER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
TIMEOUT_MS = 120_000


def smoke(url: str, query: str) -> float:
    """Run the three steps on ``url``; returns the seconds to the first drawn search. Raises AssertionError (from
    Playwright's ``expect``) with the failing step in its message."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    origin = urlparse(url).netloc
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # behind compose's Caddy (https, its own internal CA), container.sh has checked the TLS chain with curl
            # against that CA's root; Chromium here has no way to add a root without a certificate database
            page = browser.new_page(viewport={"width": 1280, "height": 800},
                                    ignore_https_errors=bool(os.environ.get("CXR_SMOKE_CA")))
            page.set_default_timeout(TIMEOUT_MS)
            page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).scheme in ("http", "https", "ws",
                    "wss") and urlparse(r.url).netloc != origin else None)
            main = page.locator('[data-testid="stMain"]')
            start = time.perf_counter()
            page.goto(url)
            page.get_by_label("Free text").fill(query)
            page.get_by_role("button", name="Search", exact=True).click()
            expect(main.get_by_text("matching", exact=False).first, "search: no results line").to_be_visible()
            expect(main.get_by_role("img", name="Chest X-ray", exact=False).first,
                   "search: no result image").to_be_visible()
            first_search = time.perf_counter() - start
            main.get_by_role("button", name="Open", exact=True).first.click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_role("button", name="Ground this case"), "open: no case dialog").to_be_visible()
            dialog.get_by_role("button", name="Ground this case").click()
            expect(main.get_by_role("img", name="Heatmap of the phrase", exact=False).first,
                   "ground: no grounding map").to_be_visible()
        finally:
            browser.close()
    assert not outside, f"requests left the app's address: {outside[:3]}"
    return first_search


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: container_smoke.py URL [QUERY]", file=sys.stderr)
        return 2
    try:
        seconds = smoke(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "pleural effusion")
    except AssertionError as exc:
        print(f"container smoke: FAILED: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"container smoke: passed; time to first search {seconds:.1f} s (cold server, first page load included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

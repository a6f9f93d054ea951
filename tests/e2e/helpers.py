"""Small helpers of the Chromium tests: wait for Streamlit to finish a run, search, open pages, drag on a plot."""

from __future__ import annotations

from typing import Any


def settle(page: Any) -> None:
    """Wait until Streamlit has finished the current run (no running status, no stale elements)."""
    from playwright.sync_api import expect

    page.wait_for_timeout(400)
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

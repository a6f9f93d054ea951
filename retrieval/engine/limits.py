"""Limits shared by the engine and its front ends (CLI, app), one source each. Plain constants: no heavy imports."""

from __future__ import annotations

MAX_K = 1000
"""The most hits (or neighbours) one query returns: the engine's ``k``, the CLI's ``--k``, and everything the app's
pages of results add up to."""

MAX_PAGE_SIZE = 100
"""The most hits the app shows on one page. Smaller than :data:`MAX_K` on purpose: every hit on a page is a
thumbnail card that the browser draws, so the app pages through the rest instead (page ``p`` of size ``n`` asks the
engine for ``p * n`` hits and one more, which says whether a next page exists, so the last page is ``MAX_K // n``)."""


def last_page(page_size: int) -> int:
    """The last page of ``page_size`` hits whose hits all lie within :data:`MAX_K`."""
    return max(1, MAX_K // max(1, page_size))

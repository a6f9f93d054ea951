"""The Curate page's state, in the URL under its ``c_*`` parameters like every page's (webapp/page_state.py).

Values are validated against the bundle (check names, metadata columns) when read; nothing in the URL is a path.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from cxr_explorer.retrieval.curate.registry import CheckSpec, Need, checks
from cxr_explorer.retrieval.curate.review import CURATOR
from cxr_explorer.webapp import page_state

PAGE_NEEDS = frozenset({Need.LABEL_COLUMN, Need.SPLIT_COLUMN, Need.THUMBNAILS})
"""What the page offers a check: the chosen label and split columns and the bundle's thumbnails (no second
bundle)."""
SHOW = {"all": "All, worst first", "flagged": "Flagged only", "open": "Not yet reviewed"}
PAGE_SIZE = 12
NONE = "(none)"


def page_checks() -> dict[str, CheckSpec[Any]]:
    """Name -> spec of the registered checks the page can run (in registry order)."""
    return {spec.name: spec for spec in checks() if spec.needs <= PAGE_NEEDS}


def _default_col(columns: list[str], names: tuple[str, ...]) -> str:
    return next((c for c in columns if c.lower() in names), NONE)


def _curator(values: list[str]) -> str:
    if not CURATOR.fullmatch(values[0]):
        raise ValueError("not a curator name")
    return values[0]


def state(columns: list[str]) -> page_state.PageState:
    """The Curate page's state (a :class:`webapp.page_state.PageState`) for a bundle with these metadata
    ``columns``: check, label and split columns, curator, filter and page; values outside the bundle's checks and
    columns fall back to the defaults."""
    cols = [NONE, *columns]
    names = list(page_checks())
    return page_state.PageState("curate", (
        page_state.choice_field("c_check", "c_check", names, names[0]),
        page_state.choice_field("c_label", "c_label", cols,
                                _default_col(columns, ("labels", "label", "finding", "findings"))),
        page_state.choice_field("c_split", "c_split", cols, _default_col(columns, ("split", "fold", "partition"))),
        page_state.Field("c_curator", "c_curator", "", _curator),
        page_state.choice_field("c_show", "c_show", list(SHOW), "all"),
        page_state.int_field("c_page", "c_page", 1, 1, 10_000),
    ))


def reset_page() -> None:
    """Back to the first page after the check or the filter changed."""
    st.session_state["c_page"] = 1


def column(key: str) -> str | None:
    """The chosen label / split column, None for ``(none)``."""
    value = st.session_state.get(key)
    return None if value in (None, NONE) else str(value)

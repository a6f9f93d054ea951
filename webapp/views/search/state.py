"""The Search page's state (a :class:`webapp.page_state.PageState`) and the callbacks of its hit buttons.

The URL holds only plain values (mode, query text, case id, target, k, page, duplicate threshold, overlay toggle,
opened case, filters ``f_<column>``); ids are looked up in the bundle later via ``row_of``, and nothing in it is a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from cxr_explorer.retrieval.bundle.targets import TARGETS
from cxr_explorer.retrieval.engine.limits import MAX_K, MAX_PAGE_SIZE, last_page
from cxr_explorer.webapp import page_state
from cxr_explorer.webapp.views.search import compose as search_compose

MODES = ("Text", "Image", "Case")
FILTER_PREFIX = "s_f_"
RANGE_PREFIX = "s_r_"


def filter_key(col: str) -> str:
    """Session-state key of a metadata column's value filter."""
    return FILTER_PREFIX + col


def range_key(col: str) -> str:
    """Session-state key of a numeric column's range filter."""
    return RANGE_PREFIX + col


def page(options: Mapping[str, list[str]], ranges: Mapping[str, tuple[float, float]] | None = None
         ) -> page_state.PageState:
    """The Search page's state for a bundle with these filter ``options`` (column -> values) and numeric ``ranges``."""
    fields = [
        page_state.choice_field("s_mode", "mode", MODES, "Text"),
        page_state.text_field("s_text", "q"),
        page_state.text_field("s_case", "case"),
        page_state.choice_field("s_target", "target", TARGETS, "images"),
        page_state.int_field("s_k", "k", 12, 1, MAX_PAGE_SIZE),
        page_state.int_field("s_page", "page", 1, 1, MAX_K),
        page_state.bool_field("s_hide_dup", "hide_dup"),
        page_state.float_field("s_dup_t", "dup", 0.94, 0.5, 1.0),
        page_state.bool_field("s_ground", "ground"),
        page_state.text_field("s_open", "open"),
        *search_compose.fields(),
    ]
    for col, values in options.items():
        allowed = set(values)
        fields.append(page_state.list_field(filter_key(col), "f_" + col, allowed.__contains__))
    for col, (lo, hi) in (ranges or {}).items():
        fields.append(page_state.range_field(range_key(col), "r_" + col, (lo, hi), lo, hi))
    return page_state.PageState("search", tuple(fields))


def page_and_size() -> tuple[int, int]:
    """(page number, hits per page) of the current search, the page clamped to :func:`last_page` of that size."""
    size = int(st.session_state["s_k"])
    return min(int(st.session_state["s_page"]), last_page(size)), size


def hits_to_ask(page: int, size: int) -> int:
    """How many hits to ask the engine for to show page ``page``: its hits and one more, which tells whether a next
    page exists (at most MAX_K)."""
    return min(MAX_K, page * size + 1)


def page_with_hits(page: int, size: int, found: int) -> int:
    """``page``, or the last page that holds any of the ``found`` hits when ``page`` lies past them (a hand-edited
    or stale page number): paging never ends on an empty page."""
    if found <= size * (page - 1):
        return max(1, -(-found // size))
    return page


def has_next_page(page: int, size: int, found: int) -> bool:
    """True when hits exist past page ``page`` (``found`` = hits returned for :func:`hits_to_ask`) within MAX_K."""
    return found > page * size and page < last_page(size)


def where(options: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The active value filters: ``{column: [values]}`` for the non-empty multiselects."""
    return {col: list(st.session_state.get(filter_key(col)) or []) for col in options
            if st.session_state.get(filter_key(col))}


def active_ranges(ranges: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """The numeric range filters narrower than the column's full range."""
    out = {}
    for col, full in ranges.items():
        value = st.session_state.get(range_key(col))
        if value is not None and tuple(value) != tuple(full):
            out[col] = (float(value[0]), float(value[1]))
    return out


# ----- callbacks of the hit buttons (run before the next script run, so they may set widget keys) ----------------

def use_case(case_id: str) -> None:
    """Search with this case's image (image-to-image or image-to-text by the current target)."""
    st.session_state.update(s_mode="Case", s_case=case_id, s_open="", s_page=1)


def use_report(report: str) -> None:
    """Search with this case's report text."""
    st.session_state.update(s_mode="Text", s_text=report, s_open="", s_page=1)


def open_case(case_id: str | None) -> None:
    """Show (or, with None, close) the case view."""
    st.session_state["s_open"] = case_id or ""


def reset_page() -> None:
    """Back to the first page of results (a new query or filter)."""
    st.session_state["s_page"] = 1


def summary(options: Mapping[str, list[str]], ranges: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """The current search in plain values (written into exports)."""
    s = st.session_state
    return {"mode": s.get("s_mode"), "query": s.get("s_text") if s.get("s_mode") == "Text" else s.get("s_case"),
            "target": s.get("s_target"), "k": s.get("s_k"), "page": s.get("s_page"), "filters": where(options),
            "ranges": {c: list(r) for c, r in active_ranges(ranges).items()},
            "hide_duplicates": s.get("s_dup_t") if s.get("s_hide_dup") else None,
            **{k: v for k, v in {"and": s.get("s_and"), "not": s.get("s_not"), "exclude_above": s.get("s_excl"),
                                 "rank_by": s.get("s_rank"), "relevant": s.get("s_rel"),
                                 "not_relevant": s.get("s_nrel")}.items() if v not in (None, "", [])}}

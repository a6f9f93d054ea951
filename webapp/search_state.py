"""The Search page's state: defaults, seeding from the URL (once per session) and writing it back.

The URL holds only plain values (mode, query text, case id, target, k, duplicate threshold, overlay toggle, opened
case, filters ``f_<column>``); ids are looked up in the bundle later via ``row_of``, and nothing in it is a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

MODES = ("Text", "Image", "Case")
TARGETS = ("images", "reports", "sentences")
MAX_K = 100
DEFAULTS: dict[str, Any] = {"s_mode": "Text", "s_text": "", "s_case": "", "s_target": "images", "s_k": 12,
                            "s_hide_dup": False, "s_dup_t": 0.94, "s_ground": False, "s_open": None}
FILTER_PREFIX = "s_f_"
KEEP_PARAMS = ("bundle",)


def filter_key(col: str) -> str:
    """Session-state key of a metadata column's filter."""
    return FILTER_PREFIX + col


def _int(value: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(str(value))))
    except (TypeError, ValueError):
        return default


def _float(value: str | None, default: float, lo: float, hi: float) -> float:
    try:
        f = float(str(value))
    except (TypeError, ValueError):
        return default
    return min(hi, max(lo, f)) if f == f else default


def seed(params: Mapping[str, Any], options: Mapping[str, list[str]]) -> None:
    """Fill the session with defaults, overridden once per session by the (validated) URL parameters."""
    if st.session_state.get("s_seeded"):
        return
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    mode = {"text": "Text", "case": "Case"}.get(str(params.get("mode", "")).lower())
    if mode:
        st.session_state["s_mode"] = mode
    st.session_state["s_text"] = str(params.get("q", st.session_state["s_text"]))[:5000]
    st.session_state["s_case"] = str(params.get("case", st.session_state["s_case"]))[:500]
    if params.get("target") in TARGETS:
        st.session_state["s_target"] = params["target"]
    st.session_state["s_k"] = _int(params.get("k"), st.session_state["s_k"], 1, MAX_K)
    if "dup" in params:
        st.session_state["s_hide_dup"] = True
        st.session_state["s_dup_t"] = _float(params.get("dup"), DEFAULTS["s_dup_t"], 0.5, 1.0)
    st.session_state["s_ground"] = params.get("ground") == "1"
    if params.get("open"):
        st.session_state["s_open"] = str(params["open"])[:500]
    for col, values in options.items():
        wanted = params.get_all("f_" + col) if hasattr(params, "get_all") else params.get("f_" + col, [])
        wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
        st.session_state[filter_key(col)] = [v for v in wanted if v in values]
    st.session_state["s_seeded"] = True


def where(options: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The active filters: ``{column: [values]}`` for the non-empty multiselects."""
    return {col: list(st.session_state.get(filter_key(col)) or []) for col in options
            if st.session_state.get(filter_key(col))}


def to_params(options: Mapping[str, list[str]]) -> dict[str, str | list[str]]:
    """The current search as URL parameters (image uploads are not part of the URL)."""
    s = st.session_state
    out: dict[str, str | list[str]] = {}
    if s["s_mode"] == "Text" and s["s_text"].strip():
        out.update(mode="text", q=s["s_text"])
    elif s["s_mode"] == "Case" and s["s_case"].strip():
        out.update(mode="case", case=s["s_case"])
    out.update(target=s["s_target"], k=str(s["s_k"]))
    if s["s_hide_dup"]:
        out["dup"] = f"{float(s['s_dup_t']):.3f}"
    if s["s_ground"]:
        out["ground"] = "1"
    if s.get("s_open"):
        out["open"] = str(s["s_open"])
    for col, values in where(options).items():
        out["f_" + col] = values
    return out


def write_url(options: Mapping[str, list[str]]) -> None:
    """Replace the URL's query with the current search (keeping the bundle choice), only when it changed."""
    params: dict[str, str | list[str]] = {k: st.query_params.get_all(k) for k in KEEP_PARAMS if k in st.query_params}
    params.update(to_params(options))
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    wanted = {k: [v] if isinstance(v, str) else list(v) for k, v in params.items()}
    if current != wanted:
        st.query_params.from_dict(params)


# ----- callbacks of the hit buttons (run before the next script run, so they may set widget keys) ----------------

def use_case(case_id: str) -> None:
    """Search with this case's image (image-to-image or image-to-text by the current target)."""
    st.session_state.update(s_mode="Case", s_case=case_id, s_open=None)


def use_report(report: str) -> None:
    """Search with this case's report text."""
    st.session_state.update(s_mode="Text", s_text=report, s_open=None)


def open_case(case_id: str | None) -> None:
    """Show (or, with None, close) the case panel."""
    st.session_state["s_open"] = case_id

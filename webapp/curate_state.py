"""The Curate page's state, kept in ``st.query_params`` under its own ``c_*`` keys (other keys are left alone).

Values are validated against the bundle (check names, metadata columns) when seeded; nothing in the URL is a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from retrieval.curate.review import CURATOR

CHECKS = {"mismatch": "Report-image mismatch", "labels": "Label issues", "outliers": "Outliers",
          "pixels": "Pixel checks", "leakage_split": "Leakage across splits"}
SHOW = {"all": "All, worst first", "flagged": "Flagged only", "open": "Not yet reviewed"}
PAGE_SIZE = 12
KEYS = ("c_check", "c_label", "c_split", "c_curator", "c_show", "c_page")
NONE = "(none)"


def _default_col(columns: list[str], names: tuple[str, ...]) -> str:
    return next((c for c in columns if c.lower() in names), NONE)


def seed(params: Mapping[str, Any], columns: list[str]) -> None:
    """Defaults, overridden once per session by valid ``c_*`` URL values."""
    if st.session_state.get("c_seeded"):
        return
    s = st.session_state
    s["c_check"] = params.get("c_check") if params.get("c_check") in CHECKS else "mismatch"
    label = params.get("c_label")
    s["c_label"] = label if label in columns else _default_col(columns, ("labels", "label", "finding", "findings"))
    split = params.get("c_split")
    s["c_split"] = split if split in columns else _default_col(columns, ("split", "fold", "partition"))
    curator = str(params.get("c_curator", ""))
    s["c_curator"] = curator if CURATOR.match(curator) else ""
    s["c_show"] = params.get("c_show") if params.get("c_show") in SHOW else "all"
    try:
        s["c_page"] = max(1, min(10_000, int(str(params.get("c_page", "1")))))
    except ValueError:
        s["c_page"] = 1
    s["c_seeded"] = True


def write_url() -> None:
    """Write the ``c_*`` keys into the URL when they changed (other parameters untouched)."""
    for key in KEYS:
        value = str(st.session_state.get(key, ""))
        if value in ("", NONE):
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def reset_page() -> None:
    """Back to the first page after the check or the filter changed."""
    st.session_state["c_page"] = 1


def column(key: str) -> str | None:
    """The chosen label / split column, None for ``(none)``."""
    value = st.session_state.get(key)
    return None if value in (None, NONE) else str(value)

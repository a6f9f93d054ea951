"""Cached curation results for the Curate page (one computation per bundle, check and settings)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.curate.registry import CheckInputs, get
from cxr_explorer.webapp import loaders


@st.cache_resource(max_entries=16, show_spinner="Running the check (once per bundle and settings)…")
def check_table(bundle_dir: str, check: str, label_col: str | None, split_col: str | None
                ) -> tuple[pd.DataFrame, dict, str]:
    """(table worst first, thresholds, note) of one registered check with its default settings; the note says
    why a check does not apply.

    ``cache_resource``: the page only reads the table (filters make new frames), so no copy per rerun."""
    spec = get(check)
    data = loaders.engine(bundle_dir, *loaders.engine_options()).curate_data()
    inputs = CheckInputs(label_col=label_col, split_col=split_col)
    missing = spec.missing(data, inputs)
    if missing:
        return pd.DataFrame(), {}, f"Choose a {missing[0].value} to look for {spec.looks_for}."
    result = spec.run_with(data, None, inputs)
    note = "" if len(result.table) else str(result.summary.get("note", "Nothing found."))
    return result.table, dict(result.thresholds), note

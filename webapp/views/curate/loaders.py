"""Cached curation results for the Curate page (one computation per bundle, check and settings)."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from cxr_explorer.retrieval.curate.labels import check_labels
from cxr_explorer.retrieval.curate.leakage import check_split_leakage
from cxr_explorer.retrieval.curate.mismatch import check_mismatch
from cxr_explorer.retrieval.curate.outliers import check_outliers
from cxr_explorer.retrieval.curate.pixels import check_pixels
from cxr_explorer.webapp import loaders


@st.cache_resource(max_entries=16, show_spinner="Running the check (once per bundle and settings)…")
def check_table(bundle_dir: str, check: str, label_col: str | None, split_col: str | None
                ) -> tuple[pd.DataFrame, dict, str]:
    """(table worst first, thresholds, note) of one check; the note says why a check does not apply.

    ``cache_resource``: the page only reads the table (filters make new frames), so no copy per rerun."""
    data = loaders.engine(bundle_dir, *loaders.engine_options()).curate_data()
    if check == "labels" and label_col is None:
        return pd.DataFrame(), {}, "Choose a label column to look for label issues."
    if check == "leakage_split" and split_col is None:
        return pd.DataFrame(), {}, "Choose a split column to look for near-duplicates across splits."
    runner = {"mismatch": lambda: check_mismatch(data), "outliers": lambda: check_outliers(data),
              "pixels": lambda: check_pixels(data),
              "labels": lambda: check_labels(data, str(label_col)),
              "leakage_split": lambda: check_split_leakage(data, str(split_col))}[check]
    result = runner()
    note = "" if len(result.table) else str(result.summary.get("note", "Nothing found."))
    return result.table, dict(result.thresholds), note

"""Cached engine calls and URL state of the Compare page (current vs prior). No Streamlit widgets here."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from retrieval.engine_temporal import Comparison, compare_case, compare_images, temporal_records, timeline
from retrieval.interval import has_temporal_path
from webapp import loaders

#: URL keys of the Compare page: source ("case" or "upload"), the case id, the phrases.
URL_KEYS = ("cmp_src", "cmp_case", "cmp_phrases")
DEFAULT_PHRASES = "pleural effusion; consolidation"
PHRASES_KEPT = "cmp_phrases_kept"


def seed_from_url() -> None:
    """Copy the Compare page's URL parameters into session state once per session (ids are checked later)."""
    if st.session_state.get("cmp_seeded"):
        return
    st.session_state["cmp_seeded"] = True
    src = st.query_params.get("cmp_src")
    st.session_state["cmp_src"] = "Two uploads" if src == "upload" else "Corpus case"
    if st.query_params.get("cmp_case"):
        st.session_state["cmp_case"] = st.query_params["cmp_case"]
    st.session_state[PHRASES_KEPT] = st.query_params.get("cmp_phrases", DEFAULT_PHRASES)


def restore_phrases() -> None:
    """Re-seed the phrase box from the kept value: Streamlit drops a widget's state on runs that do not draw it
    (e.g. while the two uploads are incomplete)."""
    st.session_state.setdefault(PHRASES_KEPT, DEFAULT_PHRASES)
    st.session_state["cmp_phrases"] = st.session_state[PHRASES_KEPT]


def keep_phrases() -> None:
    """on_change of the phrase box: remember its value beyond the widget's lifetime."""
    st.session_state[PHRASES_KEPT] = st.session_state["cmp_phrases"]


def write_url() -> None:
    """Mirror the page's state into ``st.query_params`` (so the view can be bookmarked and shared)."""
    st.query_params["cmp_src"] = "upload" if st.session_state.get("cmp_src") == "Two uploads" else "case"
    case = st.session_state.get("cmp_case")
    if case and st.query_params["cmp_src"] == "case":
        st.query_params["cmp_case"] = str(case)
    elif "cmp_case" in st.query_params:
        del st.query_params["cmp_case"]
    st.query_params["cmp_phrases"] = str(st.session_state.get(PHRASES_KEPT, ""))


@st.cache_data(max_entries=8, show_spinner=False)
def cases_with_prior(bundle_dir: str) -> list[str]:
    """Ids of the bundle's cases that have a paired prior, in bundle order ([] without a temporal section)."""
    eng = loaders._engine_of(bundle_dir)
    records = temporal_records(eng)
    if records is None:
        return []
    return [i for i in eng.cases.ids if records.prior_of(i) is not None]


def supports_interval(bundle_dir: str) -> bool:
    """True when the bundle's model has BioViL-T's prior-image path."""
    return has_temporal_path(loaders._engine_of(bundle_dir).model)


@st.cache_data(max_entries=64, show_spinner="Comparing with the prior…")
def case_comparison(bundle_dir: str, case_id: str) -> Comparison:
    """Interval change of a bundle case with its stored prior."""
    return compare_case(loaders._engine_of(bundle_dir), case_id)


@st.cache_data(max_entries=8, show_spinner="Encoding the two images together…")
def upload_comparison(bundle_dir: str, current: bytes, prior: bytes) -> Comparison:
    """Interval change of two uploads (current, prior)."""
    return compare_images(loaders._engine_of(bundle_dir), current, prior)


@st.cache_data(max_entries=64, show_spinner=False)
def case_timeline(bundle_dir: str, case_id: str) -> list[str]:
    """The case's linked studies, oldest first."""
    return timeline(loaders._engine_of(bundle_dir), case_id)


def changes_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per finding: cosine per class, the best class and its margin over the runner-up."""
    return pd.DataFrame([{"finding": c.finding, **{k: round(v, 4) for k, v in c.scores.items()},
                          "best": c.predicted, "margin": round(c.margin, 4)} for c in comparison.changes])

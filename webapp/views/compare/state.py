"""Cached engine calls and URL state of the Compare page (current vs prior). No Streamlit widgets here."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.temporal.compare import Comparison, compare_case, compare_images, temporal_records, timeline
from cxr_explorer.retrieval.temporal.interval import has_temporal_path
from cxr_explorer.webapp import loaders, page_state

SOURCES = ("Corpus case", "Two uploads")
DEFAULT_PHRASES = "pleural effusion; consolidation"


def state(first_case: str = "") -> page_state.PageState:
    """The Compare page's state (a :class:`webapp.page_state.PageState`): source (``cmp_src=upload`` only marks that
    the view used two uploads, which stay in the session), the case and the phrases. ``first_case`` (the first case
    with a prior) is the default, left out of the URL, so that opening the page adds no history entry of its own."""
    return page_state.PageState("compare", (
        page_state.Field("cmp_src", "cmp_src", SOURCES[0], lambda v: SOURCES[1] if v[0] == "upload" else SOURCES[0],
                lambda v: ["upload"] if v == SOURCES[1] else ["case"]),
        page_state.text_field("cmp_case", "cmp_case", first_case),
        page_state.text_field("cmp_phrases", "cmp_phrases", DEFAULT_PHRASES),
    ))


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
    """One row per finding: the best class and its margin over the runner-up first (what a phone shows without
    scrolling), then the cosine of each class, 3 decimals."""
    return pd.DataFrame([{"finding": c.finding, "best": c.predicted, "margin": round(c.margin, 3),
                          **{k: round(v, 3) for k, v in c.scores.items()}} for c in comparison.changes])

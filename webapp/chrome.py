"""What every page shows first: the model banner, the title and the research-use notice."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cxr_explorer.retrieval.engine.engine import Engine
from cxr_explorer.webapp import display, loaders
from cxr_explorer.webapp.display import RESEARCH_ONLY


def _picked() -> None:
    st.session_state["bundle_choice"] = int(st.session_state["bundle_pick"])


def bundle_selector() -> None:
    """The sidebar index selector when the app serves several bundles (switching applies on the next run)."""
    dirs = loaders.bundle_dirs()
    if len(dirs) < 2:
        return
    st.session_state["bundle_pick"] = int(st.session_state.get("bundle_choice", 0))
    st.sidebar.selectbox("Index", range(len(dirs)), key="bundle_pick", on_change=_picked,
                         format_func=lambda i: Path(dirs[i]).name)


def model_banner(identity: dict, manifest_model: dict) -> None:
    """A loud banner when the bundle's model is not real or its weights were not verified."""
    real = bool(identity.get("is_real", True)) and bool(manifest_model.get("is_real", True))
    name = display.md_escape(identity.get("name"))
    if not real:
        st.error(f"⚠️ NOT A REAL MODEL: this bundle uses **{name}** (random weights). Every "
                 "similarity, ranking and heatmap here is meaningless; for tests and demos only.")
    elif not identity.get("verified") or not manifest_model.get("verified", True):
        st.warning(f"⚠️ The weights of **{name}** were NOT verified against the published "
                   "checksum; results may not match the released model.")


def page_header(engine: Engine, title: str, note: str = "") -> None:
    """Banner, title and the research-use caption (plus an optional page note)."""
    bundle_selector()
    model_banner(engine.model.identity.to_dict(), engine.facts.model)
    st.title(title)
    st.caption(f"{RESEARCH_ONLY} {note}".strip())

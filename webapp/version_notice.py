"""A small sidebar notice when a newer version of the open bundle was installed (``build --append``, a rebuild): the
pages keep answering from the version they opened until the user loads the new one."""

from __future__ import annotations

import streamlit as st

from cxr_explorer.retrieval.engine.engine import Engine
from cxr_explorer.webapp import loaders

NOTICE = ("A newer version of this bundle was installed. The pages still show the version opened at start "
          "(consistent results); load the new one to see it.")


def newer_version_notice(bundle_dir: str, engine: Engine) -> None:
    """Draw the notice and its reload button when ``bundle_dir`` has a newer version than ``engine`` holds."""
    if not engine.newer_version_available():
        return
    st.sidebar.info(NOTICE)
    if st.sidebar.button("Load the new version", key="reload_bundle"):
        loaders.reload_engine(bundle_dir)
        st.rerun()

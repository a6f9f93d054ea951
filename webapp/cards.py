"""Result cards of the Search page: thumbnail grid, text hit list and the opened-case panel (Streamlit UI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from retrieval.engine import Engine
from webapp import display, loaders, search_state

GRID_COLUMNS = 4


def hit_buttons(hit: Any, key: str) -> None:
    """The three actions of every hit: similar cases, search with its report, open the case."""
    # Stacked full-width buttons: three side by side are truncated to "S…" in a four-column grid.
    st.button("Similar cases", key=f"sim_{key}", help="Cases whose images are most similar to this one",
              on_click=search_state.use_case, args=(hit.id,), width="stretch", icon=":material/image_search:")
    st.button("Search with report", key=f"rep_{key}", help="Search with this case's report text",
              disabled=not hit.report, on_click=search_state.use_report, args=(hit.report,), width="stretch",
              icon=":material/description:")
    st.button("Open case", key=f"open_{key}", help="Full image, report and metadata",
              on_click=search_state.open_case, args=(hit.id,), width="stretch", icon=":material/open_in_full:")


def image_grid(engine: Engine, hits: Sequence[Any], overlays: list[bytes] | None) -> None:
    """Thumbnails with rank, similarity, metadata and a report snippet, ``GRID_COLUMNS`` per row."""
    for start in range(0, len(hits), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, i in zip(cols, range(start, min(start + GRID_COLUMNS, len(hits))), strict=False):
            hit = hits[i]
            with col.container(border=True):
                image = overlays[i] if overlays is not None else engine.bundle.thumbnail(hit.row)
                st.image(image, width="stretch")
                st.markdown(f"**#{hit.rank}** · similarity **{hit.score:.3f}** · `{hit.id}`")
                meta = display.meta_line(hit.metadata)
                if meta:
                    st.caption(meta)
                st.caption(display.snippet(hit.matched_text or hit.report, 140) or "(no report)")
                hit_buttons(hit, f"{i}_{hit.row}")


def text_list(engine: Engine, hits: Sequence[Any], overlays: list[bytes] | None) -> None:
    """Report / sentence hits: a small thumbnail, the matched text and the actions."""
    for i, hit in enumerate(hits):
        with st.container(border=True):
            left, right = st.columns([1, 6])
            image = overlays[i] if overlays is not None else engine.bundle.thumbnail(hit.row)
            left.image(image, width="stretch")
            with right:
                st.markdown(f"**#{hit.rank}** · similarity **{hit.score:.3f}** · `{hit.id}`"
                            + (f" · {display.meta_line(hit.metadata)}" if hit.metadata else ""))
                st.write(display.snippet(hit.matched_text or hit.report, 600) or "(no report)")
                hit_buttons(hit, f"{i}_{hit.row}")


def case_panel(engine: Engine, bundle_dir: str, case_id: str) -> None:
    """The opened case: full image, full report, sentences and metadata; ids are looked up via the bundle."""
    case = engine.case(engine.bundle.row_of(case_id))
    with st.container(border=True):
        head, close = st.columns([6, 1])
        head.subheader(f"Case {case.id}")
        close.button("Close", key="close_case", on_click=search_state.open_case, args=(None,), width="stretch")
        left, right = st.columns([2, 3])
        png, ok = loaders.display_image(bundle_dir, case.row)
        left.image(png, width="stretch", caption=f"{case.width} × {case.height} px" if ok else
                   "original image unreadable; showing the stored thumbnail")
        with right:
            st.markdown("**Report**")
            st.write(case.report or "(no report)")
            st.markdown("**Metadata**")
            st.dataframe(pd.DataFrame([{"field": k, "value": str(v)} for k, v in case.metadata.items()]),
                         hide_index=True, width="stretch")
            a, b = st.columns(2)
            a.button("Similar cases", key="panel_sim", on_click=search_state.use_case, args=(case.id,))
            if b.button("Ground this case", key="panel_ground"):
                st.session_state["g_source"] = "Corpus case"
                st.session_state["g_case"] = case.id
                st.switch_page("pages/grounding.py")

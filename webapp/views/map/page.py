"""Map page (for curators): a 2-D map of image or report embeddings coloured by a metadata column, the case's
thumbnail on hover, box / click selection listed with export, the last text query's position, and near-duplicate
groups. UI only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.bundle.targets import ITEM_TARGETS
from cxr_explorer.retrieval.models.text_model import TextInputError
from cxr_explorer.webapp import chrome, collections_ui, display, exports, loaders, page_state
from cxr_explorer.webapp.views.map import chart as map_chart
from cxr_explorer.webapp.views.map import loaders as map_loaders

MAX_THUMBS = 12
MAX_GROUPS = 20
DUP_SHOWN = 6  # thumbnails per group (Streamlit stacks them on a phone)
MAX_IDS = 30  # ids listed per group

engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
meta = engine.cases.metadata
categorical = {f.column: len(f.values) for f in loaders.facets(bundle_dir) if f.values}
default_colour = min(categorical, key=lambda c: (categorical[c] < 2, categorical[c])) if categorical else ""
STATE = page_state.PageState("map", (
    page_state.choice_field("m_target", "emb", ITEM_TARGETS, "images"),
    page_state.choice_field("m_method", "proj", ("PCA", "UMAP"), "PCA"),
    page_state.choice_field("m_colour", "colour", ["", *engine.facts.metadata_columns], default_colour),
    page_state.float_field("m_dup_t", "dup", 0.95, 0.8, 1.0),
))
STATE.restore()

chrome.page_header(engine, "Map", " Positions come from a 2-D projection of the embeddings; distances are "
           "approximate.")


def selection_panel(rows: list[int]) -> None:
    """Thumbnails of the first selected cases, the table of all of them and its export."""
    st.subheader(f"{len(rows)} selected " + ("case" if len(rows) == 1 else "cases"))
    cols = st.columns(6)
    for i, row in enumerate(rows[:MAX_THUMBS]):
        with cols[i % 6]:
            case_id = str(meta["id"].iloc[row])
            display.image(engine.cases.thumbnail(row), f"Chest X-ray {case_id}")
            st.text(case_id)
    table = pd.DataFrame([{"id": str(meta["id"].iloc[r]), "row": r, **engine.case(r).metadata,
                           "report": str(meta["report"].iloc[r])} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch")
    ctx = exports.context(engine, {"selection": "map", "embeddings": st.session_state["m_target"],
                                   "projection": st.session_state["m_method"]})
    exports.export_buttons(table, ctx, "selection", name=f"map {ctx['embeddings']} {ctx['projection']}")
    colour_by = st.session_state["m_colour"] or "nothing"
    collections_ui.add_form(bundle_dir, "m", {"the selection": list(table["id"])}, "selection",
                            f"map of {ctx['embeddings']} embeddings ({ctx['projection']}), coloured by {colour_by}",
                            title="Add the selection to a collection")


def duplicates_panel() -> None:
    """Near-duplicate groups above a cosine threshold, for review: each group's size and ids on a full-width line,
    then its first thumbnails in a row; a group holding most of the bundle is called out."""
    threshold = st.slider("Near-duplicate cosine ≥", 0.80, 1.0, step=0.005, key="m_dup_t",
                          help="Pairs of images at or above this cosine are linked; linked chains form one group.")
    groups = loaders.duplicate_groups(bundle_dir, float(threshold))
    st.caption(f"{len(groups)} group{'' if len(groups) == 1 else 's'} of near-duplicate images at cosine ≥ "
               f"{threshold:.3f}" + (f" (the largest {MAX_GROUPS} shown)" if len(groups) > MAX_GROUPS else ""))
    if groups and len(groups[0]) > max(DUP_SHOWN, len(meta) // 2):
        st.warning(f"One group holds {len(groups[0])} of {len(meta)} cases: this model puts these images very "
                   "close together (e.g. random weights), so the cosine says little here. Raise the threshold.")
    for n, g in enumerate(groups[:MAX_GROUPS], start=1):
        ids = [str(meta["id"].iloc[r]) for r in g]
        st.text(f"Group {n}: {len(g)} cases: " + ", ".join(ids[:MAX_IDS])
                + (f", … and {len(g) - MAX_IDS} more" if len(g) > MAX_IDS else ""))
        cols = st.columns(DUP_SHOWN)
        for col, row in zip(cols, g[:DUP_SHOWN], strict=False):
            with col:
                display.image(engine.cases.thumbnail(row), f"Chest X-ray {meta['id'].iloc[row]}",
                              caption=str(meta["id"].iloc[row]))


a, b, c = st.columns(3)
target = a.radio("Embeddings", ITEM_TARGETS, key="m_target", horizontal=True)
method = b.radio("Projection", ["PCA", "UMAP"], key="m_method", horizontal=True,
                 help="Both are computed by the offline job and stored in the bundle.")
colour = c.selectbox("Colour by", ["", *engine.facts.metadata_columns], key="m_colour",
                     format_func=lambda v: "(none)" if not v else f"{v} ({categorical[v]} values)"
                     if v in categorical else v)
em = loaders.embedding_map(bundle_dir, target, method)
points = map_loaders.map_points(bundle_dir, target, method, colour)
if em is None or points is None:
    stored = engine.facts.map_methods.get(target, [])
    st.info(f"This bundle stores no {method} map of its {target}" + (f" (stored: {', '.join(stored)})."
            if stored else ". Rebuild it (or run build --append) with this version to store the map."))
    STATE.save()
    st.stop()
query = None
last = st.session_state.get("last_text_query")
if last:
    try:
        x, y = em.place(engine.text_embedding(last))
        query = (last, float(x), float(y))
    except TextInputError:
        query = None
    st.caption("★ marks the last text query" + (", placed by PCA." if em.method == "PCA" else
               ", placed at the mean of its nearest neighbours on the map."))
else:
    st.caption("Run a text search to see the query's position (★) on the map.")
st.markdown(f"**{em.method} of {len(points.rows)} {em.target} embeddings (stored by the offline job)**")
spec, frame = map_loaders.chart_spec(bundle_dir, target, method, colour, query)
event = st.vega_lite_chart(frame, spec, on_select="rerun", key="map_chart",
                           selection_mode=(map_chart.PICK, map_chart.BOX), width="stretch")
st.html(map_chart.legend_html(points, colour, query is not None))
st.html(map_chart.TOOLTIP_CSS)
st.caption("Hover a point for its thumbnail" + (f" (sent for the first {map_chart.MAX_HOVER_THUMBS:,} cases only)"
           if len(points.rows) > map_chart.MAX_HOVER_THUMBS else "") + "; click to select (shift-click adds), drag "
           "a box to select a region, double-click to clear.")
rows = map_chart.selected_rows(event, points)
if rows:
    selection_panel(rows)
else:
    st.info("Select points on the map (click a point, or drag a box) to list the cases.")
st.divider()
st.subheader("Near-duplicate groups")
duplicates_panel()
STATE.save()

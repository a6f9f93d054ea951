"""Map page (for curators): a 2-D map of image or report embeddings coloured by a metadata column, box / lasso /
click selection listed with export, the last text query's position, and near-duplicate groups. UI only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from retrieval.models.text_model import TextInputError
from retrieval.projection import StoredMap
from retrieval.targets import ITEM_TARGETS
from webapp import chrome, display, exports, loaders, page_state

MAX_CATEGORIES = 20
MAX_THUMBS = 12
# 20 colours that stay apart (Sasha Trubetskoy's list, without white/black), then grey for "(other)"
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
           "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075", "#ffe119",
           "#a9a9a9", "#5c3d99")
OTHER_COLOUR = "#d0d0d0"

engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
meta = engine.cases.metadata
categorical = {f.column: len(f.values) for f in loaders.facets(bundle_dir) if f.values}
default_colour = min(categorical, key=lambda c: (categorical[c] < 2, categorical[c])) if categorical else ""
STATE = page_state.PageState("map", (
    page_state.choice_field("m_target", "emb", ITEM_TARGETS, "images"),
    page_state.choice_field("m_method", "proj", ("PCA", "UMAP"), "PCA"),
    page_state.choice_field("m_colour", "colour", ["", *engine.cases.metadata_columns], default_colour),
    page_state.float_field("m_dup_t", "dup", 0.95, 0.8, 1.0),
))
STATE.restore()

chrome.page_header(engine, "Map", " Positions come from a 2-D projection of the embeddings; distances are "
           "approximate.")


def _axis_range(values: np.ndarray) -> list[float]:
    """The 0.5-99.5 percentile span of ``values`` with 5 % padding (outliers and the query star do not squash it)."""
    lo, hi = (np.percentile(values, [0.5, 99.5]) if len(values) else (0.0, 1.0))
    pad = max(float(hi - lo), 1e-6) * 0.05
    return [float(lo) - pad, float(hi) + pad]


def figure(em: StoredMap, colour: str, query: tuple[str, np.ndarray] | None) -> go.Figure:
    """Scattergl traces per colour category (20 colours + grey "(other)"); ``customdata`` = item row."""
    rows = engine.cases.position_rows(em.target)
    ids = meta["id"].astype(str).to_numpy()[rows]
    values = (meta[colour].fillna("").astype(str).to_numpy()[rows] if colour else np.full(len(rows), "all"))
    counts = pd.Series(values).value_counts()
    top = list(counts.index[:MAX_CATEGORIES])
    values = np.where(np.isin(values, top), values, "(other)")
    fig = go.Figure()
    cats = top + (["(other)"] if len(counts) > MAX_CATEGORIES else [])
    for n, cat in enumerate(cats):
        sel = np.flatnonzero(values == cat)
        hover = [f"{display.html_text(ids[i])}<br>{display.html_text(colour)}: {display.html_text(values[i])}"
                 for i in sel]
        name = display.html_text(cat or "(empty)")
        fig.add_trace(go.Scattergl(x=em.coords[sel, 0], y=em.coords[sel, 1], mode="markers",
                                   name=f"{name} ({len(sel)})", customdata=rows[sel], hovertext=hover,
                                   hoverinfo="text", marker={"size": 7 if len(rows) < 2000 else 4, "opacity": 0.8,
                                   "color": OTHER_COLOUR if cat == "(other)" else PALETTE[n % len(PALETTE)]}))
    if query is not None:
        fig.add_trace(go.Scatter(x=[query[1][0]], y=[query[1][1]], mode="markers", name="query",
                                 marker={"symbol": "star", "size": 18, "color": "black"}, hoverinfo="text",
                                 hovertext=[f"query: {display.html_text(display.snippet(query[0], 80))}"],
                                 cliponaxis=True))
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 30, "b": 10}, dragmode="zoom",
                      legend={"title": {"text": display.html_text(colour)}},
                      title=f"{em.method} of {len(rows)} {em.target} embeddings (stored by the offline job)")
    fig.update_xaxes(range=_axis_range(em.coords[:, 0]))
    fig.update_yaxes(range=_axis_range(em.coords[:, 1]))
    return fig


def selected_rows(event: Any) -> list[int]:
    """Item rows of the selected points (box, lasso or click); the query star is ignored."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    rows = []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            rows.append(int(cd))
    return list(dict.fromkeys(rows))


def selection_panel(rows: list[int]) -> None:
    """Thumbnails of the first selected cases, the table of all of them and its export."""
    st.subheader(f"{len(rows)} selected " + ("case" if len(rows) == 1 else "cases"))
    cols = st.columns(6)
    for i, row in enumerate(rows[:MAX_THUMBS]):
        with cols[i % 6]:
            case_id = str(meta["id"].iloc[row])
            display.image(engine.cases.thumbnail_bytes(row), f"Chest X-ray {case_id}")
            st.text(case_id)
    table = pd.DataFrame([{"id": str(meta["id"].iloc[r]), "row": r, **engine.case(r).metadata,
                           "report": str(meta["report"].iloc[r])} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch")
    ctx = exports.context(engine, {"selection": "map", "embeddings": st.session_state["m_target"],
                                   "projection": st.session_state["m_method"], "query": "selection"})
    exports.export_buttons(table, ctx, "selection")


def duplicates_panel() -> None:
    """Near-duplicate groups above a cosine threshold, for review."""
    threshold = st.slider("Near-duplicate cosine ≥", 0.80, 1.0, 0.95, 0.005, key="m_dup_t")
    groups = loaders.duplicate_groups(bundle_dir, float(threshold))
    st.caption(f"{len(groups)} group{'' if len(groups) == 1 else 's'} of near-duplicate images at cosine ≥ "
               f"{threshold:.3f}")
    for g in groups[:20]:
        cols = st.columns(min(8, len(g)) + 1)
        cols[0].text(f"{len(g)} cases\n" + "\n".join(str(meta["id"].iloc[r]) for r in g[:8]))
        for col, row in zip(cols[1:], g[:8], strict=False):
            with col:
                display.image(engine.cases.thumbnail_bytes(row), f"Chest X-ray {meta['id'].iloc[row]}")


a, b, c = st.columns(3)
target = a.radio("Embeddings", ITEM_TARGETS, key="m_target", horizontal=True)
method = b.radio("Projection", ["PCA", "UMAP"], key="m_method", horizontal=True,
                 help="Both are computed by the offline job and stored in the bundle.")
colour = c.selectbox("Colour by", ["", *engine.cases.metadata_columns], key="m_colour",
                     format_func=lambda v: "(none)" if not v else f"{v} ({categorical[v]} values)"
                     if v in categorical else v)
em = loaders.embedding_map(bundle_dir, target, method)
if em is None:
    stored = engine.facts.map_methods.get(target, [])
    st.info(f"This bundle stores no {method} map of its {target}" + (f" (stored: {', '.join(stored)})."
            if stored else ". Rebuild it (or run build --append) with this version to store the map."))
    STATE.save()
    st.stop()
query = None
last = st.session_state.get("last_text_query")
if last:
    try:
        query = (last, em.place(engine.text_embedding(last)))
    except TextInputError:
        query = None
    st.caption("★ marks the last text query" + (", placed by PCA." if em.method == "PCA" else
               ", placed at the mean of its nearest neighbours on the map."))
else:
    st.caption("Run a text search to see the query's position (★) on the map.")
event = st.plotly_chart(figure(em, colour, query), on_select="rerun", selection_mode=("points", "box", "lasso"),
                        key="map_chart", config={"displaylogo": False})
rows = selected_rows(event)
if rows:
    selection_panel(rows)
else:
    st.info("Select points on the map (click, or the Box Select / Lasso Select tools) to list the cases.")
st.divider()
st.subheader("Near-duplicate groups")
duplicates_panel()
STATE.save()

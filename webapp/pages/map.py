"""Map page (for curators): a 2-D map of image or report embeddings coloured by a metadata column, box / lasso /
click selection listed with export, the last text query's position, and near-duplicate groups. UI only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from retrieval.models.text_model import TextInputError
from webapp import chrome, display, loaders

MAX_CATEGORIES = 12
MAX_THUMBS = 12

engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
meta = engine.bundle.metadata

chrome.page_header(engine, "Map", " Positions come from a 2-D projection of the embeddings; distances are "
           "approximate.")


def figure(em: loaders.EmbeddingMap, colour: str | None, query: tuple[str, np.ndarray] | None) -> go.Figure:
    """Scattergl traces per colour category; ``customdata`` = item row (read back from selections)."""
    rows = em.rows
    ids = meta["id"].astype(str).to_numpy()[rows]
    values = (meta[colour].fillna("").astype(str).to_numpy()[rows] if colour else np.full(len(rows), "all"))
    counts = pd.Series(values).value_counts()
    top = set(counts.index[:MAX_CATEGORIES])
    values = np.where(np.isin(values, list(top)), values, "(other)")
    labels = meta["labels"].fillna("").astype(str).to_numpy()[rows] if "labels" in meta.columns else None
    fig = go.Figure()
    for cat in [c for c in counts.index if c in top] + (["(other)"] if len(counts) > MAX_CATEGORIES else []):
        sel = np.flatnonzero(values == cat)
        hover = [f"{ids[i]}<br>{labels[i]}" if labels is not None else ids[i] for i in sel]
        fig.add_trace(go.Scattergl(x=em.coords[sel, 0], y=em.coords[sel, 1], mode="markers", name=cat or "(empty)",
                                   customdata=rows[sel], hovertext=hover, hoverinfo="text",
                                   marker={"size": 7 if len(rows) < 2000 else 4, "opacity": 0.8}))
    if query is not None:
        fig.add_trace(go.Scatter(x=[query[1][0]], y=[query[1][1]], mode="markers+text", name="query",
                                 text=[display.snippet(query[0], 30)], textposition="top center",
                                 marker={"symbol": "star", "size": 18, "color": "black"}, hoverinfo="text",
                                 hovertext=[f"query: {query[0]}"]))
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 30, "b": 10}, dragmode="zoom",
                      legend={"title": {"text": colour or ""}}, title=f"{em.method} of {len(rows)} embeddings")
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
    st.subheader(f"{len(rows)} selected cases")
    cols = st.columns(6)
    for i, row in enumerate(rows[:MAX_THUMBS]):
        cols[i % 6].image(engine.bundle.thumbnail(row), caption=str(meta["id"].iloc[row]), width="stretch")
    table = pd.DataFrame([{"id": str(meta["id"].iloc[r]), "row": r, **engine.case(r).metadata,
                           "report": display.snippet(str(meta["report"].iloc[r]), 200)} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch")
    a, b, _ = st.columns([1, 1, 4])
    a.download_button("Export selection CSV", table.to_csv(index=False).encode(), "cxr-explorer-selection.csv",
                      "text/csv", key="sel_csv", on_click="ignore")
    b.download_button("Export selection JSON", display.frame_json(table).encode(), "cxr-explorer-selection.json",
                      "application/json", key="sel_json", on_click="ignore")


def duplicates_panel() -> None:
    """Near-duplicate groups above a cosine threshold, for review."""
    threshold = st.slider("Near-duplicate cosine ≥", 0.80, 1.0, 0.95, 0.005, key="m_dup_t")
    groups = loaders.duplicate_groups(bundle_dir, float(threshold))
    st.caption(f"{len(groups)} groups of near-duplicate images at cosine ≥ {threshold:.3f}")
    for g in groups[:20]:
        cols = st.columns(min(8, len(g)) + 1)
        cols[0].markdown(f"**{len(g)} cases**<br>" + ", ".join(f"`{meta['id'].iloc[r]}`" for r in g[:8]),
                         unsafe_allow_html=True)
        for col, row in zip(cols[1:], g[:8], strict=False):
            col.image(engine.bundle.thumbnail(row), width="stretch")


a, b, c = st.columns(3)
target = a.radio("Embeddings", ["images", "reports"], key="m_target", horizontal=True)
method = b.radio("Projection", ["PCA", "UMAP"], key="m_method", horizontal=True,
                 help="PCA is instant; UMAP keeps neighbourhoods better and takes longer the first time.")
columns = engine.bundle.metadata_columns
colour = c.selectbox("Colour by", [None, *columns], key="m_colour", index=1 if columns else 0,
                     format_func=lambda v: "(none)" if v is None else v)
em = loaders.embedding_map(bundle_dir, target, method)
query = None
last = st.session_state.get("last_text_query")
if last:
    try:
        query = (last, em.project(engine.text_embedding(last)[None, :])[0])
    except TextInputError:
        query = None
    st.caption(f"★ marks the last text query “{display.snippet(last, 60)}”, projected with the same fitted "
               f"{em.method}.")
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

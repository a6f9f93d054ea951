"""Cached data of the Map page's chart (webapp/views/map/chart.py): hover thumbnails and the points of a stored map."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.bundle.targets import Target
from cxr_explorer.webapp import loaders
from cxr_explorer.webapp.views.map.chart import MAX_HOVER_THUMBS, MapPoints, colour_values, spec_and_table, thumb_uri


@st.cache_resource(max_entries=4, show_spinner="Preparing hover thumbnails…")
def hover_thumbs(bundle_dir: str) -> tuple[str, ...]:
    """Small JPEG data URIs of the first :data:`MAX_HOVER_THUMBS` cases of the bundle (by case row), made once per
    bundle from the stored thumbnails."""
    eng = loaders._engine_of(bundle_dir)
    return tuple(thumb_uri(eng.cases.thumbnail(r)) for r in range(min(eng.facts.count, MAX_HOVER_THUMBS)))


def separator(bundle_dir: str, column: str) -> str | None:
    """The multi-label separator of ``column`` as the Search facets split it (None: one value per cell)."""
    return next((f.separator for f in loaders.facets(bundle_dir) if f.column == column), None)


@st.cache_resource(max_entries=16, show_spinner=False)
def map_points(bundle_dir: str, target: str, method: str, colour: str) -> MapPoints | None:
    """The points of the stored ``method`` map of ``target`` coloured by metadata column ``colour`` ("" = none);
    None when the bundle stores no such map."""
    em = loaders.embedding_map(bundle_dir, target, method)
    if em is None:
        return None
    eng = loaders._engine_of(bundle_dir)
    meta = eng.cases.metadata
    rows = eng.cases.position_rows(cast(Target, target))
    ids = meta["id"].astype(str).to_numpy()[rows]
    values, counts = (colour_values(meta[colour].to_numpy()[rows].tolist(), separator(bundle_dir, colour)) if colour
                      else (np.full(len(rows), "all"), None))
    thumbs = hover_thumbs(bundle_dir)
    return MapPoints(em.coords, rows, ids, values, [thumbs[r] if r < len(thumbs) else "" for r in rows], counts)


@st.cache_data(max_entries=32, show_spinner=False)
def chart_spec(bundle_dir: str, target: str, method: str, colour: str,
               query: tuple[str, float, float] | None) -> tuple[dict[str, Any], pd.DataFrame]:
    """:func:`webapp.views.map.chart.spec_and_table` for one view and query position ``(text, x, y)``, once per view
    (Altair's build and validation were most of the page's script time on every rerun). Call it only where
    :func:`map_points` has the map."""
    points = map_points(bundle_dir, target, method, colour)
    assert points is not None  # the page checks map_points first
    star = None if query is None else (query[0], np.array(query[1:], dtype=np.float32))
    return spec_and_table(points, colour, star)

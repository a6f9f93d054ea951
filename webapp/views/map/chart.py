"""The Map page's chart: a Vega-Lite scatter (Altair, drawn by Streamlit's bundled Vega) whose tooltip shows the
case's thumbnail on hover, with click and box selection. No Streamlit widgets here.

The thumbnail rides in the tooltip field ``image`` as a ``data:`` URI of a small JPEG (vega-tooltip draws that
field as an ``<img>``; nothing is fetched from another origin). To bound the page weight, thumbnails go with at most
:data:`MAX_HOVER_THUMBS` points (the first ones in bundle order); the other points show their id only.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, cast

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image

MAX_CATEGORIES = 20
MAX_HOVER_THUMBS = 2_000  # at 64 px (~1.5 KB each) about 3 MB of page weight at most
HOVER_PX = 64
# 20 colours that stay apart (Sasha Trubetskoy's list, without white/black), then grey for "(other)"
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
           "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075", "#ffe119",
           "#a9a9a9", "#5c3d99")
OTHER_COLOUR = "#d0d0d0"
# vega-tooltip puts the box left of the cursor when it would overflow on the right, without stopping at the page's
# left edge: on a phone a point in the middle of the map got a thumbnail cut in half. Narrow screens: pinned left,
# and never in the way of the point under it (the pointer goes through it).
TOOLTIP_CSS = ("<style>@media (max-width: 640px){#vg-tooltip-element{left:8px !important;"
               "max-width:calc(100vw - 16px);pointer-events:none}}</style>")
PICK, BOX = "pick", "box"  # names of the chart's selections (Streamlit returns them under these names)


@dataclass(frozen=True)
class MapPoints:
    """What the chart draws: coordinates [M, 2] of M items, their case rows [M], ids [M], colour values [M] and
    thumbnail data URIs [M] ("" where none is sent); ``counts``: for a multi-label colour column, the number of
    points carrying each label (the legend's counts, as the Search facet counts them), else None."""

    coords: np.ndarray
    rows: np.ndarray
    ids: np.ndarray
    values: np.ndarray
    thumbs: list[str]
    counts: dict[str, int] | None = None


def colour_values(cells: list[object], sep: str | None) -> tuple[np.ndarray, dict[str, int] | None]:
    """(one colour value per cell [M], cells per label or None): a single-value column as it is (empty: ""); a
    multi-label column split like the Search facets (:func:`retrieval.engine.facets.split_labels`), each cell
    drawn in its most frequent label's colour and every label counted once per cell that carries it."""
    from cxr_explorer.retrieval.engine.facets import split_labels
    from cxr_explorer.retrieval.engine.filters import EMPTY

    labels = [["" if v == EMPTY else v for v in split_labels(c, sep)] for c in cells]
    if sep is None:
        return np.array([ls[0] for ls in labels], dtype=object).astype(str), None
    counts: dict[str, int] = {}
    for ls in labels:
        for v in ls:
            counts[v] = counts.get(v, 0) + 1
    primary = [min(ls, key=lambda v: (-counts[v], v)) for ls in labels]
    return np.array(primary, dtype=object).astype(str), counts


def thumb_uri(jpeg: bytes, size: int = HOVER_PX) -> str:
    """A ``data:image/jpeg;base64,…`` URI of a stored thumbnail shrunk to ``size`` px on its longest side."""
    with Image.open(io.BytesIO(jpeg)) as src:
        im = src.convert("L")
    im.thumbnail((size, size))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def axis_range(values: np.ndarray) -> list[float]:
    """The 0.5-99.5 percentile span of ``values`` [M] with 5 % padding (outliers and the query star do not squash
    it)."""
    lo, hi = (np.percentile(values, [0.5, 99.5]) if len(values) else (0.0, 1.0))
    pad = max(float(hi - lo), 1e-6) * 0.05
    return [float(lo) - pad, float(hi) + pad]


def categories(values: np.ndarray) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """(values [M] with all but the :data:`MAX_CATEGORIES` most frequent set to "(other)", the categories in legend
    order, the count of each)."""
    counts = pd.Series(values).value_counts()
    top = [str(v) for v in counts.index[:MAX_CATEGORIES]]
    out = np.where(np.isin(values, top), values, "(other)")
    cats = top + (["(other)"] if len(counts) > MAX_CATEGORIES else [])
    sizes = {c: int(counts[c]) for c in top}
    if "(other)" in cats:
        sizes["(other)"] = int(len(values) - sum(sizes.values()))
    return out, cats, sizes


def legend_sizes(points: MapPoints) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """:func:`categories` of the points, with a multi-label column's counts of cases per label."""
    out, cats, sizes = categories(points.values)
    if points.counts is not None:
        sizes = {c: sizes[c] if c == "(other)" else points.counts.get(c, sizes[c]) for c in cats}
    return out, cats, sizes


QUERY = "query (★)"
# a five-pointed star as an SVG path in Vega's unit square (the bundled Vega has no named "star" symbol: the name
# was read as a broken path, which also cost the chart its legend)
STAR_PATH = ("M0,-1L0.2245,-0.309L0.9511,-0.309L0.3633,0.118L0.5878,0.809L0,0.382L-0.5878,0.809L-0.3633,0.118"
             "L-0.9511,-0.309L-0.2245,-0.309Z")


def chart(points: MapPoints, colour: str, query: tuple[str, np.ndarray] | None) -> alt.LayerChart:
    """The scatter (+ the query as a black star, row -1): colour by ``colour`` (20 colours + grey "(other)"), hover
    tooltip with id, value and thumbnail, selections :data:`PICK` (click, shift-click adds) and :data:`BOX` (drag).
    One chart over one table (a layered chart lost its axes and legend to Streamlit's fixed height)."""
    values, cats, sizes = legend_sizes(points)
    labels = {c: f"{c or '(empty)'} ({sizes[c]})" for c in cats}
    frame = pd.DataFrame({"x": points.coords[:, 0], "y": points.coords[:, 1], "row": points.rows,
                          "id": points.ids, "group": [labels[v] for v in values], "image": points.thumbs,
                          "kind": "case"})
    domain = [labels[c] for c in cats]
    colours = [OTHER_COLOUR if c == "(other)" else PALETTE[n % len(PALETTE)] for n, c in enumerate(cats)]
    if query is not None:
        star = {"x": float(query[1][0]), "y": float(query[1][1]), "row": -1, "id": query[0][:80], "group": QUERY,
                "image": "", "kind": "query"}
        frame = pd.concat([frame, pd.DataFrame([star])], ignore_index=True)
        domain, colours = [*domain, QUERY], [*colours, "#000000"]
    x_dom, y_dom = axis_range(points.coords[:, 0]), axis_range(points.coords[:, 1])
    pick = alt.selection_point(name=PICK, fields=["row"], on="click", toggle="event.shiftKey")
    box = alt.selection_interval(name=BOX, encodings=["x", "y"])
    size = 60 if len(points.rows) < 2000 else 15
    tooltip = [alt.Tooltip("id:N", title="id"), alt.Tooltip("group:N", title=colour or "all")]
    if any(points.thumbs):
        tooltip.append(alt.Tooltip("image:N"))
    points_chart = alt.Chart(frame).mark_point(filled=True, opacity=0.8).encode(
        # fitted to the cases; the few outliers and a far query star are drawn on the edge (clamped), not squashing
        x=alt.X("x:Q", scale=alt.Scale(domain=x_dom, nice=False, clamp=True), title=None,
                axis=alt.Axis(orient="top")),  # Streamlit's fixed height cuts what lies under or right of the plot
        y=alt.Y("y:Q", scale=alt.Scale(domain=y_dom, nice=False, clamp=True), title=None),
        color=alt.Color("group:N", scale=alt.Scale(domain=domain, range=colours),
                        legend=None),  # drawn by :func:`legend_html`: it wraps at any width
        shape=alt.condition(alt.datum.kind == "query", alt.value(STAR_PATH), alt.value("circle")),
        size=alt.condition(alt.datum.kind == "query", alt.value(300), alt.value(size)),
        tooltip=tooltip,
    ).add_params(pick, box)
    return alt.LayerChart(layer=[points_chart], height=520)


def spec_and_table(points: MapPoints, colour: str, query: tuple[str, np.ndarray] | None
                   ) -> tuple[dict[str, Any], pd.DataFrame]:
    """(the Vega-Lite spec of :func:`chart` without its data, the points table [M(+1 with the query), 7]) for
    ``st.vega_lite_chart(table, spec)``: the table travels as Arrow, and Altair's own inlining (which refuses more
    than 5,000 rows) is never asked for."""
    layered = chart(points, colour, query)
    table = layered.data  # Altair lifts the one layer's table to the top
    layered.data = alt.Undefined
    return layered.to_dict(), cast(pd.DataFrame, table)  # the layer names Altair's placeholder, Streamlit fills it


def legend(points: MapPoints) -> list[tuple[str, str]]:
    """(colour, label with count) of each category, in legend order."""
    _, cats, sizes = legend_sizes(points)
    return [(OTHER_COLOUR if c == "(other)" else PALETTE[n % len(PALETTE)], f"{c or '(empty)'} ({sizes[c]})")
            for n, c in enumerate(cats)]


def legend_html(points: MapPoints, colour: str, with_query: bool) -> str:
    """The colour key as HTML (labels are corpus values: escaped), one swatch per category, then the query star."""
    from cxr_explorer.webapp.display import html_text

    items = [f"<span style='white-space:nowrap;margin-right:14px'><span style='display:inline-block;width:10px;"
             f"height:10px;border-radius:5px;background:{c};margin-right:4px'></span>{html_text(label)}</span>"
             for c, label in legend(points)]
    if with_query:
        items.append("<span style='white-space:nowrap'>★ last text query</span>")
    title = f"<b>{html_text(colour)}</b>: " if colour else ""
    note = ""
    if points.counts is not None:
        shown = set(points.values)
        rest = sorted(((v, n) for v, n in points.counts.items() if v not in shown), key=lambda vn: (-vn[1], vn[0]))
        also = ", ".join(f"{v or '(empty)'} ({n})" for v, n in rest)
        note = (" <i>(cases with several labels are counted under each and drawn in the colour of their most common "
                f"one{'; also: ' + html_text(also) if also else ''})</i>")
    return f"<div style='font-size:0.8rem;line-height:1.6'>{title}{' '.join(items)}{note}</div>"


def selected_rows(event: object, points: MapPoints) -> list[int]:
    """Case rows of the selected points: the clicked ones, then those inside the dragged box (the star is never
    selected)."""
    selection = getattr(event, "selection", None) or (event.get("selection") if isinstance(event, dict) else None)
    if not selection:
        return []
    get = selection.get if isinstance(selection, dict) else lambda k, d=None: getattr(selection, k, d)
    rows = [int(p["row"]) for p in (get(PICK) or []) if isinstance(p, dict) and int(p.get("row", -1)) >= 0]
    box = get(BOX) or {}
    if box.get("x") and box.get("y"):
        (x0, x1), (y0, y1) = sorted(map(float, box["x"])), sorted(map(float, box["y"]))
        x, y = points.coords[:, 0], points.coords[:, 1]
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        rows += [int(r) for r in points.rows[inside]]
    return list(dict.fromkeys(rows))

"""Search page: text, image or case queries over images, reports and sentences, with facet filters, duplicate
hiding, retrieve-then-ground overlays, the case view (a dialog), paging, export and a shareable URL. UI only."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.bundle.reader import BundleError
from cxr_explorer.retrieval.engine.filters import QueryError
from cxr_explorer.retrieval.engine.limits import MAX_K
from cxr_explorer.retrieval.inputs.images import ImageLoadError
from cxr_explorer.retrieval.models.text_model import TextInputError
from cxr_explorer.webapp import auth, chrome, display, exports, loaders
from cxr_explorer.webapp.views.search import cards
from cxr_explorer.webapp.views.search import compose as search_compose
from cxr_explorer.webapp.views.search import state as search_state

UPLOAD_TYPES = ["png", "jpg", "jpeg", "dcm", "dicom"]
PREVIEW_PX = 160
COLOUR_BAR_PX = 320
USER_ERRORS = (QueryError, TextInputError, ImageLoadError, BundleError)

engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
facets = loaders.facets(bundle_dir)
options = {f.column: [v for v, _ in f.values] for f in facets if f.values}
counts = {f.column: dict(f.values) for f in facets if f.values}
ranges = {f.column: f.range for f in facets if f.range is not None}
facet_columns = [f.column for f in facets]
state = search_state.page(options, ranges)
state.restore()

chrome.page_header(engine, "Search", " Similarities are cosines in [-1, 1], not probabilities.")


def with_count(col: str, value: str) -> str:
    """``COVID-19 (412)``: a facet value and how many cases have it."""
    return f"{value} ({counts[col].get(value, 0)})"


def filter_controls() -> None:
    """Target, k, duplicate hiding, overlay toggle, one multiselect (with counts) per facet, numeric ranges."""
    active = bool(search_state.where(options) or search_state.active_ranges(ranges))
    with st.expander("Options and filters" + (" (active)" if active else ""), expanded=active):
        a, b, c = st.columns([3, 1, 2])
        a.radio("Search in", search_state.TARGETS, key="s_target", horizontal=True, on_change=search_state.reset_page,
                format_func={"images": "Images", "reports": "Reports", "sentences": "Report sentences"}.get)
        b.number_input("k (per page)", min_value=1, max_value=search_state.MAX_PAGE_SIZE, step=1, key="s_k",
                       on_change=search_state.reset_page)
        c.toggle("Hide near-duplicates", key="s_hide_dup", disabled=st.session_state["s_target"] == "sentences")
        if st.session_state["s_hide_dup"]:
            c.slider("Duplicate cosine ≥", 0.80, 1.0, step=0.01, key="s_dup_t")
        n = len(options) + len(ranges)
        cols = st.columns(max(1, min(4, n)))
        for i, (col, values) in enumerate(options.items()):
            cols[i % len(cols)].multiselect(col, values, key=search_state.filter_key(col),
                                            on_change=search_state.reset_page,
                                            format_func=partial(with_count, col))
        for j, (col, (lo, hi)) in enumerate(ranges.items()):
            step = 1.0 if float(lo).is_integer() and float(hi).is_integer() else (hi - lo) / 100
            cols[(len(options) + j) % len(cols)].slider(col, float(lo), float(hi), step=step,
                                                        key=search_state.range_key(col),
                                                        on_change=search_state.reset_page)
        if not n:
            st.caption("This bundle has no metadata columns to filter on.")


def query_controls() -> tuple[str, object]:
    """The query widgets; returns (kind, value) of the query to run, or ("", None)."""
    mode = st.segmented_control("Query by", search_state.MODES, key="s_mode", required=True)
    if mode == "Text":
        with st.form("text_query", border=False):
            left, right = st.columns([6, 1], vertical_alignment="bottom")
            left.text_area("Free text", key="s_text", placeholder="e.g. small left pleural effusion (a whole report "
                           "may be pasted; Ctrl+Enter searches)", height=68, max_chars=None)
            submitted = right.form_submit_button("Search", type="primary", width="stretch",
                                                 on_click=search_state.reset_page)
        text = st.session_state["s_text"]
        if submitted and not text.strip():
            st.error("The query is empty: type a finding, e.g. 'right lower lobe consolidation'.")
            return "", None
        if text.strip():
            windows, limit = engine.encoder.text_windows(text)
            if windows > 1:
                st.caption(f"This text ({len(text):,} characters) is over the model's {limit}-token limit: it is "
                           f"embedded as {windows} windows of whole sentences, averaged (as the build embeds long "
                           "reports).")
        return ("text", text) if text.strip() else ("", None)
    if mode == "Image":
        upload = st.file_uploader("Query image (PNG, JPEG or DICOM)", type=UPLOAD_TYPES, key="s_upload")
        if upload is not None:
            st.session_state["s_upload_bytes"] = (upload.name, upload.getvalue())
        kept = st.session_state.get("s_upload_bytes")
        if kept is None:
            st.caption("Uploads are kept for this browser session only; a copied link cannot carry them.")
            return "", None
        name, data = kept
        if len(data) > loaders.max_upload_bytes():
            st.error(f"The image is too large ({len(data) / 2**20:.1f} MB; the limit is "
                     f"{loaders.max_upload_bytes() / 2**20:.0f} MB).")
            return "", None
        try:
            st.image(loaders.upload_display(data, PREVIEW_PX), caption=display.snippet(name, 60), width=PREVIEW_PX)
        except ImageLoadError:
            pass  # the search below says why the image cannot be read
        st.caption("Uploaded image (kept for this session; links cannot carry uploads; DICOM patient identifiers "
                   "are never read or shown).")
        return "image", data
    st.text_input("Case id", key="s_case", placeholder="id of a case in this bundle", on_change=search_state.reset_page)
    case_id = st.session_state["s_case"].strip()
    return ("case", case_id) if case_id else ("", None)


def query_runner(kind: str, value: object, k: int, hide_duplicates: bool = True) -> Callable[[], list]:
    """The query for the first ``k`` hits with the current options, resolved now and run when called (engine errors
    propagate to the caller); ``hide_duplicates`` False ignores the duplicate option (to count what it removed)."""
    s = st.session_state
    where = loaders.where_with_ranges(bundle_dir, search_state.where(options), search_state.active_ranges(ranges))
    hide = hide_duplicates and s["s_hide_dup"] and s["s_target"] != "sentences"
    dup = float(s["s_dup_t"]) if hide else None
    if any(not values for values in where.values()):
        return list  # a range that holds no value
    common = {"k": k, "target": s["s_target"], "where": where or None}
    if search_compose.active():
        return partial(search_compose.run, engine, kind, value, common, dup)
    common["hide_duplicates"] = dup
    if kind == "text":
        return partial(engine.search_text, str(value), **common)
    if kind == "image":
        assert isinstance(value, bytes)  # query_controls gives an image query as the upload's bytes
        return partial(engine.search_image, value, **common)
    return partial(engine.search_id, str(value), **common)


def run_query(kind: str, value: object, k: int, hide_duplicates: bool = True) -> list:
    """:func:`query_runner`'s query, run now."""
    return query_runner(kind, value, k, hide_duplicates)()


def _frame_of(query: Callable[[], list]) -> pd.DataFrame:
    return display.hits_frame(query())


def why_empty(target: str) -> str:
    """Which filter emptied the result (each filter tried alone, then together), or that duplicate hiding did."""
    where = search_state.where(options)
    rng = search_state.active_ranges(ranges)
    for col in [*where, *rng]:
        alone = loaders.where_with_ranges(bundle_dir, {c: v for c, v in where.items() if c == col},
                                          {c: r for c, r in rng.items() if c == col})
        if loaders.total_matching(bundle_dir, target, alone) == 0:
            return f"No results: the filter on “{display.md_escape(col)}” matches no {target} of this bundle."
    if (where or rng) and loaders.total_matching(bundle_dir, target,
                                                 loaders.where_with_ranges(bundle_dir, where, rng)) == 0:
        return "No results: no case passes all the filters together; remove one of them."
    return "No results."


def dup_note(kind: str, value: object, shown: int, asked: int) -> str:
    """How many hits near-duplicate hiding removed from the first ``asked`` (empty when it is off)."""
    s = st.session_state
    if not s["s_hide_dup"] or s["s_target"] == "sentences":
        return ""
    unhidden = len(run_query(kind, value, asked, hide_duplicates=False))
    removed = max(0, unhidden - shown)
    return f"Near-duplicate hiding removed {removed} of the first {unhidden} hits." if removed else ""


kind, value = query_controls()
search_compose.controls()
filter_controls()
st.toggle("Ground the query on every result (retrieve-then-ground)", key="s_ground", disabled=kind != "text",
          help="Overlays the text query's heatmap on each thumbnail, from the stored patch embeddings.")

hits: list | None = None
more = False  # whether hits exist past this page
page_no, per_page = search_state.page_and_size()
if kind:
    if kind == "image":
        auth.record_once("upload", page="search", image=value)
    auth.record_once("search", kind=kind, target=st.session_state["s_target"],
                     **({"image": value} if kind == "image" else {"query" if kind == "text" else "case": value}))
    try:
        found = run_query(kind, value, search_state.hits_to_ask(page_no, per_page))
    except USER_ERRORS as exc:
        st.error(display.plain_message(exc, bundle_dir))
    else:
        more = search_state.has_next_page(page_no, per_page, len(found))
        last = search_state.page_with_hits(page_no, per_page, len(found))
        if last != page_no:
            page_no = last
            state.correct(s_page=page_no)
        all_hits = found[:per_page * page_no]
        hits = all_hits[per_page * (page_no - 1):]
        note = dup_note(kind, value, len(all_hits), per_page * page_no)
        if note:
            st.caption(note)
        if kind == "text":
            st.session_state["last_text_query"] = str(value)
if hits:
    overlays = None
    if kind == "text" and st.session_state["s_ground"]:
        overlays, vmin, vmax = loaders.grounded_thumbnails(bundle_dir, tuple(h.row for h in hits), str(value),
                                                           "RdBu_r", 0.5)
        st.caption(f"Heatmaps of the query on each result, shared range [{vmin:.3f}, {vmax:.3f}] (red = more "
                   "similar); no overlay outside the model's centre crop.")
        st.image(loaders.colour_bar("RdBu_r", vmin, vmax), width=COLOUR_BAR_PX,
                 caption=f"Colour bar from {vmin:.3f} to {vmax:.3f}")
    total = loaders.total_matching(bundle_dir, st.session_state["s_target"],
                                   loaders.where_with_ranges(bundle_dir, search_state.where(options),
                                                             search_state.active_ranges(ranges)))
    cards.results_header(hits, page_no, per_page, total, kind, value)
    if st.session_state["s_target"] == "images":
        cards.image_grid(engine, hits, overlays, facet_columns)
    else:
        cards.text_list(engine, hits, overlays)
    cards.pager(page_no, more)
    if search_compose.active():
        search_compose.explain(hits)
    search_compose.feedback(hits)
    search_compose.add_to_collection(bundle_dir, hits, all_hits, f"{kind} {value if kind != 'image' else 'upload'}")
    reachable = min(total, MAX_K)
    label = (f"all {reachable} matching results" if total <= MAX_K else
             f"the first {MAX_K} of {total} matching results")
    exports.export_buttons(display.hits_frame(hits), exports.context(engine, search_state.summary(options, ranges)),
                           "results", everything=(partial(_frame_of, query_runner(kind, value, reachable)), label))
elif hits == []:
    st.info(why_empty(st.session_state["s_target"]))
elif not kind:
    st.info("Type a query, upload an image or give a case id to search this bundle.")

st.session_state.pop(cards.RERUN_APP, None)  # this run is the whole app already
if st.session_state.get("s_open"):
    cards.case_dialog(engine, bundle_dir, str(st.session_state["s_open"]),
                      str(value) if kind == "text" else "", facet_columns)

state.save()

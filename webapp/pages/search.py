"""Search page: text, image or case queries over images, reports and sentences, with filters, duplicate hiding,
retrieve-then-ground overlays, case panel, export and a shareable URL. UI only: all work is done by the Engine."""

from __future__ import annotations

import streamlit as st

from retrieval.bundle import BundleError
from retrieval.filters import QueryError
from retrieval.imageio import ImageLoadError
from retrieval.models.text_model import TextInputError
from webapp import cards, chrome, display, loaders, search_state

UPLOAD_TYPES = ["png", "jpg", "jpeg", "dcm", "dicom"]
USER_ERRORS = (QueryError, TextInputError, ImageLoadError, BundleError)

engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
options = loaders.filter_options(bundle_dir)
search_state.seed(st.query_params, options)

chrome.page_header(engine, "Search", " Similarities are cosines in [-1, 1], not probabilities.")


def filter_controls() -> None:
    """Target, k, duplicate hiding, overlay toggle and one multiselect per metadata column."""
    with st.expander("Options and filters", expanded=bool(search_state.where(options))):
        a, b, c = st.columns([3, 1, 2])
        a.radio("Search in", search_state.TARGETS, key="s_target", horizontal=True,
                format_func={"images": "Images", "reports": "Reports", "sentences": "Report sentences"}.get)
        b.number_input("k", min_value=1, max_value=search_state.MAX_K, step=1, key="s_k")
        c.toggle("Hide near-duplicates", key="s_hide_dup", disabled=st.session_state["s_target"] == "sentences")
        if st.session_state["s_hide_dup"]:
            c.slider("Duplicate cosine ≥", 0.80, 1.0, step=0.01, key="s_dup_t")
        cols = st.columns(max(1, min(4, len(options))))
        for i, (col, values) in enumerate(options.items()):
            cols[i % len(cols)].multiselect(col, values, key=search_state.filter_key(col))
        if not options:
            st.caption("This bundle has no metadata columns to filter on.")


def query_controls() -> tuple[str, object]:
    """The query widgets; returns (kind, value) of the query to run, or ("", None)."""
    mode = st.segmented_control("Query by", search_state.MODES, key="s_mode", required=True)
    if mode == "Text":
        with st.form("text_query", border=False):
            left, right = st.columns([6, 1], vertical_alignment="bottom")
            left.text_input("Free text", key="s_text", placeholder="e.g. small left pleural effusion")
            submitted = right.form_submit_button("Search", type="primary", width="stretch")
        text = st.session_state["s_text"]
        if submitted and not text.strip():
            st.error("The query is empty: type a finding, e.g. 'right lower lobe consolidation'.")
            return "", None
        return ("text", text) if text.strip() else ("", None)
    if mode == "Image":
        upload = st.file_uploader("Query image (PNG, JPEG or DICOM)", type=UPLOAD_TYPES, key="s_upload")
        if upload is None:
            return "", None
        data = upload.getvalue()
        if len(data) > loaders.max_upload_bytes():
            st.error(f"{upload.name} is too large ({len(data) / 2**20:.1f} MB; the limit is "
                     f"{loaders.max_upload_bytes() / 2**20:.0f} MB).")
            return "", None
        st.caption(f"Uploaded: {upload.name} (patient identifiers in DICOM files are never read or shown).")
        return "image", data
    st.text_input("Case id", key="s_case", placeholder="id of a case in this bundle")
    case_id = st.session_state["s_case"].strip()
    return ("case", case_id) if case_id else ("", None)


def run_query(kind: str, value: object) -> list:
    """Run the query with the current options (engine errors propagate to the caller)."""
    s = st.session_state
    where = search_state.where(options)
    dup = float(s["s_dup_t"]) if s["s_hide_dup"] and s["s_target"] != "sentences" else None
    common = {"k": int(s["s_k"]), "target": s["s_target"], "where": where or None}
    if kind == "text":
        return engine.search_text(str(value), hide_duplicates=dup, **common)
    if kind == "image":
        return engine.search_image(value, hide_duplicates=dup, **common)  # type: ignore[arg-type]
    return engine.search_id(str(value), hide_duplicates=dup, **common)


def export(hits: list) -> None:
    """CSV and JSON downloads of the result table."""
    frame = display.hits_frame(hits)
    a, b, _ = st.columns([1, 1, 4])
    a.download_button("Export CSV", frame.to_csv(index=False).encode(), "cxr-explorer-results.csv", "text/csv",
                      key="export_csv", on_click="ignore")
    b.download_button("Export JSON", display.frame_json(frame).encode(), "cxr-explorer-results.json",
                      "application/json", key="export_json", on_click="ignore")


kind, value = query_controls()
filter_controls()
st.toggle("Ground the query on every result (retrieve-then-ground)", key="s_ground", disabled=kind != "text",
          help="Overlays the text query's heatmap on each thumbnail, from the stored patch embeddings.")

if st.session_state.get("s_open"):
    try:
        cards.case_panel(engine, bundle_dir, str(st.session_state["s_open"]))
    except BundleError as exc:
        st.error(str(exc))

hits: list | None = None
if kind:
    try:
        hits = run_query(kind, value)
    except USER_ERRORS as exc:
        st.error(str(exc))
    else:
        if kind == "text":
            st.session_state["last_text_query"] = str(value)
if hits:
    overlays = None
    if kind == "text" and st.session_state["s_ground"]:
        overlays, vmin, vmax = loaders.grounded_thumbnails(bundle_dir, tuple(h.row for h in hits), str(value),
                                                           "RdBu_r", 0.5)
        st.caption(f"Heatmaps of “{display.snippet(str(value), 60)}” on each result, shared range "
                   f"[{vmin:.3f}, {vmax:.3f}] (red = more similar); no overlay outside the model's centre crop.")
    st.markdown(f"**{len(hits)} results** for {kind} query" + (f" “{display.snippet(str(value), 80)}”"
                                                               if kind != "image" else ""))
    if st.session_state["s_target"] == "images":
        cards.image_grid(engine, hits, overlays)
    else:
        cards.text_list(engine, hits, overlays)
    export(hits)
elif hits == []:
    st.info("No results: loosen the filters.")
elif not kind:
    st.info("Type a query, upload an image or give a case id to search this bundle.")

search_state.write_url(options)

"""Grounding page: phrase heatmaps on a corpus case (stored patches) or an upload (one cached forward), phrases side
by side, a grounded report (one coloured layer per sentence) and a zero-shot prompt check. UI only."""

from __future__ import annotations

from typing import cast

import streamlit as st

from cxr_explorer.retrieval.bundle.reader import BundleError
from cxr_explorer.retrieval.inputs.images import ImageLoadError
from cxr_explorer.retrieval.models.text_model import TextInputError
from cxr_explorer.webapp import auth, chrome, display, loaders
from cxr_explorer.webapp.views.grounding import state as grounding_state

UPLOAD_TYPES = ["png", "jpg", "jpeg", "dcm", "dicom"]
USER_ERRORS = (TextInputError, ImageLoadError, BundleError, ValueError)
MAX_PHRASES = 4
MAPS_PER_ROW = 2  # at most two maps side by side: each stays >= 320 px wide at 1280 px

engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
ids = engine.cases.ids
STATE = grounding_state.state(ids[0])
STATE.restore()
if st.session_state.get("g_case") not in ids:
    if st.session_state.get("g_case"):
        st.warning(f"No case “{display.md_escape(st.session_state['g_case'])}” in this bundle; showing the first.")
    STATE.correct(g_case=ids[0])

chrome.page_header(engine, "Grounding", " Heatmaps show patch-text cosine similarity, not disease probability.")


def pick_source() -> tuple[int | bytes | None, str]:
    """(row or upload bytes, default report) of the chosen image."""
    src = st.radio("Image", ["Corpus case", "Upload"], key="g_source", horizontal=True)
    if src == "Corpus case":
        case_id = st.selectbox("Case", ids, key="g_case")
        row = engine.row_of(case_id)
        return row, engine.case(row).report
    upload = st.file_uploader("Image (PNG, JPEG or DICOM)", type=UPLOAD_TYPES, key="g_upload")
    if upload is not None:
        st.session_state["g_upload_bytes"] = upload.getvalue()
        auth.record_once("upload", page="grounding", image=st.session_state["g_upload_bytes"])
    data = st.session_state.get("g_upload_bytes")
    if data is None:
        st.info("Upload an image to ground phrases on it. Uploads stay in this browser session only: a copied link "
                "cannot carry them.")
        return None, ""
    if len(data) > loaders.max_upload_bytes():
        st.error(f"The image is too large ({len(data) / 2**20:.1f} MB; the limit is "
                 f"{loaders.max_upload_bytes() / 2**20:.0f} MB).")
        return None, ""
    try:
        loaders.upload_display(data)
    except ImageLoadError as exc:
        st.error(f"Cannot read the uploaded image: {display.plain_message(exc, bundle_dir)}")
        return None, ""
    if upload is None:
        st.caption("Showing the image uploaded earlier in this session.")
    return data, ""


def view_controls() -> tuple[str, float, bool, tuple[float, float] | None]:
    """Colour map, opacity, isolines and the similarity range (None = fit each map)."""
    a, b, c, d = st.columns(4)
    cmap = a.selectbox("Colour map", grounding_state.COLORMAPS, key="g_cmap")
    alpha = b.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="g_alpha")
    iso = c.checkbox("Isolines (25/50/75 %)", key="g_iso")
    fit = c.checkbox("Fit range to each map", key="g_fit", help="On: each map's colours span its own lowest to "
                     "highest similarity (printed under it). Off: the range on the right, the same for every map.")
    vrange = cast(tuple[float, float], d.slider("Similarity range", -1.0, 1.0, step=0.05, key="g_range",
                                                disabled=fit))  # a (low, high) pair: the state holds a tuple
    if not fit and vrange[1] <= vrange[0]:
        st.error("The similarity range is empty: move the upper end above the lower end.")
        vrange = (-1.0, 1.0)
    return cmap, alpha, iso, None if fit else (float(vrange[0]), float(vrange[1]))


def phrase_maps(source: int | bytes, cmap: str, alpha: float, iso: bool, vrange: tuple[float, float] | None) -> None:
    """One heatmap per phrase (``;``-separated), side by side."""
    st.text_input("Phrase(s) — separate several with ';' (press Enter to update)", key="g_phrases")
    given = [p.strip() for p in st.session_state["g_phrases"].split(";") if p.strip()]
    phrases = given[:MAX_PHRASES]
    if not phrases:
        st.error("Type a phrase to ground, e.g. 'left pleural effusion'.")
        return
    if len(given) > MAX_PHRASES:
        st.info(display.phrases_shown(len(phrases), len(given), "image"))
    auth.record_once("ground", phrases=phrases, **({"image": source} if isinstance(source, bytes)
                                                   else {"case": engine.cases.ids[source]}))
    width = min(MAPS_PER_ROW, len(phrases))
    for start in range(0, len(phrases), width):
        cols = st.columns(width)
        for col, phrase in zip(cols, phrases[start:start + width], strict=False):
            with col:
                one_map(source, phrase, cmap, alpha, iso, vrange)


def one_map(source: int | bytes, phrase: str, cmap: str, alpha: float, iso: bool,
            vrange: tuple[float, float] | None) -> None:
    """One phrase's heatmap, its colour bar with the range, the phrase (as text) and its global similarity."""
    try:
        png, score, vmin, vmax = loaders.grounding_png(bundle_dir, source, phrase, cmap, alpha, iso, vrange)
    except USER_ERRORS as exc:
        st.error(f"“{display.md_escape(display.snippet(phrase, 60))}”: {display.plain_message(exc, bundle_dir)}")
        return
    display.image(png, f"Heatmap of the phrase {display.snippet(phrase, 80)} on the chest X-ray")
    display.image(loaders.colour_bar(cmap, vmin, vmax), f"Colour bar from {vmin:.3f} to {vmax:.3f}")
    fitted = " (fitted to this map)" if vrange is None else ""
    st.text(f"{phrase}\nglobal similarity {score:.3f} · colour range [{vmin:.3f}, {vmax:.3f}]{fitted}")


def grounded_report(source: int | bytes, default_report: str) -> None:
    """Each sentence of a report as its own coloured region + contour, toggled per sentence."""
    key = f"g_report_{source if isinstance(source, int) else 'upload'}"
    st.session_state.setdefault(key, default_report)
    report = st.text_area("Report (the case's own by default; paste any)", key=key, height=100)
    if not report.strip():
        st.info("Paste a report to ground its sentences.")
        return
    try:
        layers = loaders.report_layers(bundle_dir, source, report)
    except USER_ERRORS as exc:
        st.error(display.plain_message(exc, bundle_dir))
        return
    left, right = st.columns([3, 2])
    shown = []
    with right:
        for i, (text, score, _) in enumerate(layers):
            on = st.checkbox(f"layer {i + 1} — similarity {score:.3f}", value=True, key=f"{key}_s{i}")
            st.html(f"<div style='border-left:6px solid {display.colour_hex(i)};padding-left:6px'>"
                    f"{display.html_text(text)}</div>")
            if on:
                shown.append(i)
    base_png = loaders.upload_display(source) if isinstance(source, bytes) else loaders.display_image(
        bundle_dir, source)[0]
    maps = [layers[i][2] if i in shown else layers[i][2] * float("nan") for i in range(len(layers))]
    with left:
        display.image(display.png_bytes(display.compose_layers(display.open_png(base_png), maps)),
                      "The chest X-ray with one coloured region per report sentence")
    left.caption("Each sentence: region at or above the middle of its own similarity range, outlined in its colour.")


def zero_shot(source: int | bytes) -> None:
    """Positive vs negative prompt sets: both cosine similarities and the margin (no probabilities)."""
    pos_default, neg_default = loaders.default_prompts()
    a, b = st.columns(2)
    pos = a.text_area("Positive prompts (one per line)", "\n".join(pos_default), key="g_pos", height=120)
    neg = b.text_area("Negative prompts (one per line)", "\n".join(neg_default), key="g_neg", height=120)
    pos_l = [p.strip() for p in pos.splitlines() if p.strip()]
    neg_l = [p.strip() for p in neg.splitlines() if p.strip()]
    if not pos_l or not neg_l:
        st.error("Both prompt sets need at least one prompt.")
        return
    try:
        score = loaders.zero_shot(bundle_dir, source, tuple(pos_l), tuple(neg_l))
    except USER_ERRORS as exc:
        st.error(display.plain_message(exc, bundle_dir))
        return
    x, y, z = st.columns(3)
    x.metric("Positive similarity", f"{score.positive:.4f}")
    y.metric("Negative similarity", f"{score.negative:.4f}")
    z.metric("Margin (positive − negative)", f"{score.margin:+.4f}")
    st.caption("Cosine similarities of the image with each averaged prompt set; the margin ranks images, it is not a "
               "probability and not a diagnosis.")


source, default_report = pick_source()
if source is not None:
    cmap, alpha, iso, vrange = view_controls()
    phrase_maps(source, cmap, alpha, iso, vrange)
    st.divider()
    if st.toggle("Grounded report", key="g_show_report"):
        grounded_report(source, default_report)
    if st.toggle("Zero-shot check (positive vs negative prompts)", key="g_show_zero"):
        zero_shot(source)
STATE.save()

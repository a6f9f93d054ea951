"""Compare page: a current study beside its prior, the same phrases grounded on both, zero-shot interval change per
finding (cosines and margins) and the patient's timeline. A corpus case (its stored prior) or two uploads. UI only."""

from __future__ import annotations

import streamlit as st

from cxr_explorer.retrieval.bundle.reader import BundleError
from cxr_explorer.retrieval.engine.filters import QueryError
from cxr_explorer.retrieval.inputs.images import ImageLoadError
from cxr_explorer.retrieval.models.text_model import TextInputError
from cxr_explorer.webapp import auth, chrome, display, loaders
from cxr_explorer.webapp.views.compare import state as compare_state

UPLOAD_TYPES = ["png", "jpg", "jpeg", "dcm", "dicom"]
USER_ERRORS = (TextInputError, ImageLoadError, BundleError, QueryError, ValueError)
MAX_PHRASES = 3
TIMELINE_MAX = 8
CMAP = "RdBu_r"
PAIR_WIDTH = 740  # px: two 360 px maps on a laptop, above the fold with the table; a phone shrinks the row to fit
THUMB_WIDTH = 120

engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
cases = compare_state.cases_with_prior(bundle_dir)
STATE = compare_state.state(cases[0] if cases else "")
STATE.restore()
chrome.page_header(engine, "Compare", " Current study beside its prior. Similarities and margins, not probabilities.")
interval_ok = compare_state.supports_interval(bundle_dir)
if not interval_ok:
    st.warning(f"This bundle's model ({engine.model.spec.name}) has no prior-image path: interval change needs a "
               "BioViL-T bundle. Phrases are still grounded on both images.")


def _upload(label: str, key: str) -> bytes | None:
    upload = st.file_uploader(label, type=UPLOAD_TYPES, key=key)
    if upload is None:
        return None
    data = upload.getvalue()
    auth.record_once("upload", page=f"compare {key}", image=data)
    if len(data) > loaders.max_upload_bytes():
        st.error(f"The {label.split(' (')[0].lower()} is too large ({len(data) / 2**20:.1f} MB).")
        return None
    try:
        loaders.upload_display(data)
    except ImageLoadError as exc:
        st.error(f"Cannot read the {label.split(' (')[0].lower()}.")
        st.text(str(exc))
        return None
    return data


def pick_pair() -> tuple[int | bytes, int | bytes, str | None] | None:
    """(current, prior, case id) as rows or upload bytes; None until both images are there."""
    src = st.radio("Images", compare_state.SOURCES, key="cmp_src", horizontal=True)
    if src == compare_state.SOURCES[1]:
        a, b = st.columns(2)
        with a:
            current = _upload("Current image (PNG, JPEG or DICOM)", "cmp_up_current")
        with b:
            prior = _upload("Prior image", "cmp_up_prior")
        if current is None or prior is None:
            st.info("Upload the current image and the prior image of the same patient.")
            return None
        return current, prior, None
    if not cases:
        st.info("This bundle was built without priors (build with --priors, --prior-col or --patient-col and "
                "--order-col), or none of its cases has a prior. Use two uploads instead.")
        return None
    if st.session_state.get("cmp_case") not in cases:
        if st.session_state.get("cmp_case"):
            st.warning(f"No case “{display.md_escape(st.session_state['cmp_case'])}” with a prior in this bundle; "
                       "showing the first.")
        STATE.correct(cmp_case=cases[0])
    case_id = st.selectbox(f"Case with a prior ({len(cases)})", cases, key="cmp_case")
    prior_id = compare_state.temporal_records(engine).prior_of(case_id)  # type: ignore[union-attr]
    return engine.row_of(case_id), engine.row_of(str(prior_id)), case_id


def phrase_box() -> list[str]:
    """The phrases to ground, drawn before the images are picked: the box always shows the phrases in use, and
    keeps them while an upload is missing or unreadable and when the source changes."""
    st.text_input("Phrase(s) — separate several with ';' (press Enter to update)", key="cmp_phrases")
    return [p.strip() for p in st.session_state["cmp_phrases"].split(";") if p.strip()]


def grounded_pair(current: int | bytes, prior: int | bytes, given: list[str]) -> None:
    """Each of the first phrases of ``given`` grounded on the current (left) and the prior (right) image, on the
    same colour range; how many are shown is said when some are left out."""
    phrases = given[:MAX_PHRASES]
    if not phrases:
        st.error("Type a phrase to ground, e.g. 'left pleural effusion'.")
        return
    if len(given) > MAX_PHRASES:
        st.info(display.phrases_shown(len(phrases), len(given), "pair"))
    auth.record_once("compare", phrases=phrases, **{name: engine.cases.ids[src] for name, src in
                                                    (("current", current), ("prior", prior)) if isinstance(src, int)})
    for phrase in phrases:
        st.text(f"Phrase: {display.snippet(phrase, 80)}")
        pair_maps(current, prior, phrase)


def pair_maps(current: int | bytes, prior: int | bytes, phrase: str) -> None:
    """One phrase on the current and the prior image side by side (on a phone too), one colour range fitted to
    both maps, and its colour bar."""
    try:
        fitted = [loaders.grounding_png(bundle_dir, source, phrase, CMAP, 0.5, False, None)
                  for source in (current, prior)]
        vrange = (min(f[2] for f in fitted), max(f[3] for f in fitted))
        maps = [loaders.grounding_png(bundle_dir, source, phrase, CMAP, 0.5, False, vrange)
                for source in (current, prior)]
    except USER_ERRORS as exc:
        st.error("Cannot ground this phrase:")
        st.text(str(exc))
        return
    with st.container(horizontal=True, gap="small", width=PAIR_WIDTH):
        for (png, score, _, _), name in zip(maps, ("current", "prior"), strict=True):
            with st.container(width="stretch"):
                display.image(png, f"Heatmap of the phrase {display.snippet(phrase, 80)} on the {name} image",
                              caption=f"{name}: global similarity {score:.3f}")
    display.image(loaders.colour_bar(CMAP, *vrange), f"Colour bar from {vrange[0]:.3f} to {vrange[1]:.3f}")
    st.text(f"colour range [{vrange[0]:.3f}, {vrange[1]:.3f}], fitted to both maps (red = more similar)")


def interval_change(current: int | bytes, prior: int | bytes, case_id: str | None) -> None:
    """The zero-shot interval change table (improving / stable / worsening per finding)."""
    st.subheader("Interval change (zero-shot)", anchor=False)
    try:
        if case_id is not None:
            comparison = compare_state.case_comparison(bundle_dir, case_id)
        else:
            assert isinstance(current, bytes) and isinstance(prior, bytes)
            comparison = compare_state.upload_comparison(bundle_dir, current, prior)
    except USER_ERRORS as exc:
        st.error("Cannot compare these images:")
        st.text(str(exc))
        return
    st.dataframe(compare_state.changes_frame(comparison), hide_index=True, width="stretch",
                 column_config={"finding": st.column_config.TextColumn("finding", pinned=True),
                                "best": st.column_config.TextColumn("best", width="small"),
                                "margin": st.column_config.NumberColumn("margin", width="small", format="%.3f")})
    st.caption("Cosine of the current image fused with its prior (BioViL-T) with each prompt set (on a phone, "
               "scroll the table sideways for each class); margin = best − runner-up. They rank pairs; they are not "
               "probabilities and not a diagnosis.")


def patient_timeline(case_id: str) -> None:
    """All linked studies of the case's patient, oldest first, current and prior marked."""
    ids = compare_state.case_timeline(bundle_dir, case_id)
    prior_id = compare_state.temporal_records(engine).prior_of(case_id)  # type: ignore[union-attr]
    st.subheader(f"Timeline ({len(ids)} studies, oldest first)", anchor=False)
    shown = ids[:TIMELINE_MAX]
    cols = st.columns(len(shown))
    for col, item in zip(cols, shown, strict=True):
        row = engine.row_of(item)
        col.image(loaders.display_image(bundle_dir, row)[0], width=THUMB_WIDTH)
        mark = "current · " if item == case_id else "prior · " if item == prior_id else ""
        col.text(mark + display.snippet(item, 40))
    if len(ids) > TIMELINE_MAX:
        st.caption(f"{len(ids) - TIMELINE_MAX} later studies not shown.")


phrases = phrase_box()
pair = pick_pair()
STATE.save()
if pair is not None:
    current, prior, case_id = pair
    grounded_pair(current, prior, phrases)
    st.divider()
    if interval_ok:
        interval_change(current, prior, case_id)
    if case_id is not None:
        st.divider()
        patient_timeline(case_id)

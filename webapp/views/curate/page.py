"""Curate page: each check's worst cases with thumbnails and evidence, ok / wrong / exclude decisions kept in the
review file beside the bundle, and the exports (cleaned manifest, exclusion list). UI only: the checks live in
``retrieval.curate``; state in the URL (``c_*``, webapp/page_state.py), decisions on disk."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.curate.export import BUILD_HINT, cleaned_manifest, decision_list, exclusion_list
from cxr_explorer.retrieval.curate.registry import CheckSpec
from cxr_explorer.retrieval.curate.review import (
    EFFECTS,
    Decision,
    ReviewError,
    ReviewLog,
    conflicts,
    current,
    excluded,
    read_decisions,
    review_dir,
)
from cxr_explorer.webapp import auth, chrome, collections_ui, display, loaders
from cxr_explorer.webapp.views.curate import loaders as curate_loaders
from cxr_explorer.webapp.views.curate import state as curate_state

COLUMNS = 3
NOTE_CHARS = 500
MAX_PROBLEMS_SHOWN = 10
THUMB_WIDTH = 200
BADGE = {"ok": "ok", "wrong": "WRONG", "exclude": "EXCLUDE"}  # plain text: no emoji font is guaranteed offline

engine = loaders.current_engine()
bundle_dir = loaders.current_bundle_dir()
meta = engine.cases.metadata
columns = engine.facts.metadata_columns
SPECS = curate_state.page_checks()
STATE = curate_state.state(columns)
STATE.restore()
chrome.page_header(engine, "Curate", " Scores are cosines, ranks, margins and shares of neighbours, not "
                   "probabilities. Decisions are saved beside the bundle, never inside it.")
reviews = review_dir(bundle_dir)
WHO = auth.identity()
CURATOR_OK = auth.is_curator()
if WHO is not None:
    st.session_state["c_curator"] = WHO.curator_name  # decisions carry the signed-in identity, not a typed name


def decide(check: str, case_id: str, decision: str) -> None:
    """Button callback: append the decision durably to this curator's log."""
    if not auth.is_curator():
        st.session_state["c_error"] = "Only curators may decide; you are signed in as a viewer."
        return
    curator = st.session_state.get("c_curator", "")
    try:
        log = st.session_state.get("c_log")
        if not isinstance(log, ReviewLog) or log.curator != curator or log.directory != reviews:
            log = st.session_state["c_log"] = ReviewLog(reviews, curator)
        note = str(st.session_state.get(f"c_note_{check}_{case_id}", "") or "")
        log.append(check, case_id, decision, note=note.strip()[:NOTE_CHARS])
        auth.record("decide", curator=curator, check=check, id=case_id, decision=decision,
                    note=note.strip()[:NOTE_CHARS])
    except (ReviewError, OSError) as exc:
        st.session_state["c_error"] = f"Could not save the decision: {exc}"


def controls() -> None:
    """Check, columns, curator, filter."""
    a, b, c = st.columns([3, 2, 2])
    a.selectbox("Check", list(SPECS), key="c_check", format_func=lambda c: SPECS[c].page_title,
                help="\n\n".join(f"**{s.page_title}**: {s.help}" for s in SPECS.values()),
                on_change=curate_state.reset_page)
    b.selectbox("Label column", [curate_state.NONE, *columns], key="c_label", on_change=curate_state.reset_page)
    c.selectbox("Split column", [curate_state.NONE, *columns], key="c_split", on_change=curate_state.reset_page)
    d, e = st.columns([3, 4])
    if WHO is not None:
        d.text(f"Curator: {WHO.user}" + ("" if CURATOR_OK else " (viewer: decisions and exports are for curators)"))
    else:
        d.text_input("Curator", key="c_curator", placeholder="your name (letters, digits, _ . -)",
                     help="Your decisions go to <bundle>.review/<curator>.jsonl next to the bundle.")
    e.radio("Show", list(curate_state.SHOW), key="c_show", format_func=lambda v: curate_state.SHOW[v], horizontal=True,
            on_change=curate_state.reset_page)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def figure_line(row: pd.Series, col: str, k: object) -> str:
    """``name: value``; a rank past the ``k`` searched neighbours reads ``> k`` (only the k nearest are searched)."""
    if col.startswith("rank_") and isinstance(k, int) and int(row[col]) > k:
        return f"{col}: > {k}"
    return f"{col}: {_fmt(row[col])}"


def terms(spec: CheckSpec[Any]) -> None:
    """One line per column and threshold name of the check, and what each decision does."""
    with st.expander("What the names and the decisions mean"):
        st.text("\n".join(f"{name}: {line}" for name, line in spec.terms) or spec.help)  # names: plain text
        st.text("\n".join(f"{decision}: {line}" for decision, line in EFFECTS.items()))


def decision_line(done: Decision | None, others: dict[str, Decision]) -> str:
    """``decision: EXCLUDE by ana (note: ...)``, with the other curators' differing decisions when they differ."""
    if done is None:
        return "decision: —"
    line = f"decision: {BADGE[done.decision]} by {done.curator}" + (f" (note: {done.note})" if done.note else "")
    rest = [f"{d.curator}: {d.decision}" for c, d in sorted(others.items()) if c != done.curator]
    return line + (f"\nconflict: {', '.join(rest)}" if rest else "")


def card(row: pd.Series, spec: CheckSpec[Any], state: dict, can_decide: bool, k: object,
         conflicting: dict) -> None:
    """One case: thumbnail(s), id, the check's columns, evidence and the three decision buttons."""
    case_id, check = str(row["id"]), spec.name
    with st.container(border=True):
        if spec.pair_caption:
            left, right = st.columns(2)
            left.image(engine.cases.thumbnail(int(row["row"])), width="stretch", caption="this case")
            right.image(engine.cases.thumbnail(int(row["other_row"])), width="stretch",
                        caption=spec.pair_caption)
        else:
            st.image(engine.cases.thumbnail(int(row["row"])), width=THUMB_WIDTH)
        st.text(f"#{row['rank']}  {case_id}  {'flagged' if row['flagged'] else ''}")
        st.text("\n".join(figure_line(row, c, k) for c in spec.columns if c in row.index))
        if spec.shows_report:
            st.text(display.snippet(str(meta["report"].iloc[int(row["row"])]), 200) or "(no report)")
        with st.expander("Evidence"):
            st.code(json.dumps(json.loads(str(row["evidence"])), indent=1, ensure_ascii=False), language="json",
                    wrap_lines=True)
        done = state.get((check, case_id))
        st.text(decision_line(done, conflicting.get((check, case_id), {})))
        st.text_input("Note", key=f"c_note_{check}_{case_id}", max_chars=NOTE_CHARS, disabled=not can_decide,
                      placeholder="optional, saved with the next decision", label_visibility="collapsed")
        ok, wrong = st.columns(2)  # three side by side are cut to "excl…" in a three-card row
        for col, decision in ((ok, "ok"), (wrong, "wrong"), (st, "exclude")):
            col.button(decision, key=f"c_{decision}_{check}_{case_id}", disabled=not can_decide, width="stretch",
                       type="primary" if done and done.decision == decision else "secondary",
                       on_click=decide, args=(check, case_id, decision))


def cases(table: pd.DataFrame, spec: CheckSpec[Any], state: dict, k: object, conflicting: dict) -> None:
    """The filtered, paginated list of cards."""
    show, check = st.session_state["c_show"], spec.name
    if show == "flagged":
        table = table[table["flagged"]]
    elif show == "open":
        table = table[[(check, str(i)) not in state for i in table["id"]]]
    pages = max(1, math.ceil(len(table) / curate_state.PAGE_SIZE))
    page = min(int(st.session_state["c_page"]), pages)
    STATE.correct(c_page=page)
    st.caption(f"{len(table)} cases · {int(table['flagged'].sum())} flagged · page {page} of {pages}")
    chunk = table.iloc[(page - 1) * curate_state.PAGE_SIZE: page * curate_state.PAGE_SIZE]
    can_decide = bool(st.session_state.get("c_curator")) and CURATOR_OK
    if not CURATOR_OK:
        st.info("Viewers see the checks; deciding on cases is for curators.")
    elif not can_decide:
        st.info("Type your curator name above to mark cases as ok / wrong / exclude.")
    for start in range(0, len(chunk), COLUMNS):
        for col, (_, row) in zip(st.columns(COLUMNS), chunk.iloc[start:start + COLUMNS].iterrows(), strict=False):
            with col:
                card(row, spec, state, can_decide, k, conflicting)
    prev, _, nxt = st.columns([1, 3, 1])
    prev.button("Previous", disabled=page <= 1, width="stretch", key="c_prev",
                on_click=lambda: st.session_state.update(c_page=page - 1))
    nxt.button("Next", disabled=page >= pages, width="stretch", key="c_next",
               on_click=lambda: st.session_state.update(c_page=page + 1))


def exports(state: dict, conflicting: dict, problems: list[str]) -> None:
    """Excluded count, conflicts, skipped review lines, the three downloads and how to rebuild."""
    st.subheader("Export")
    out = excluded(state)
    st.text(f"{len(out)} case(s) excluded by {len({d.curator for d in out.values()})} curator(s), "
            f"{len(state)} decision(s) in all; review files in the folder {reviews.name} beside the bundle")
    if conflicting:
        st.warning(f"{len(conflicting)} case(s) with conflicting decisions between curators (the latest counts; "
                   "each is listed in the decision list's conflict column):")
        st.text("\n".join(f"{check} {case_id}: " + ", ".join(f"{d.curator}: {d.decision}" for d in
                                                             sorted(per.values(), key=lambda d: d.curator))
                          for (check, case_id), per in sorted(conflicting.items())[:MAX_PROBLEMS_SHOWN]))
    if problems:
        st.warning(f"{len(problems)} bad line(s) in the review files were skipped (e.g. a write cut off by a crash "
                   "or a hand edit); every valid decision is kept:")
        st.text("\n".join(problems[:MAX_PROBLEMS_SHOWN]) + ("\n…" if len(problems) > MAX_PROBLEMS_SHOWN else ""))
    if not CURATOR_OK:
        st.info("Exports are for curators.")
        return
    manifest = cleaned_manifest(meta, columns, set(out))
    a, b, c = st.columns(3)
    a.download_button("Cleaned manifest CSV", manifest.to_csv(index=False).encode(), "cleaned-manifest.csv",
                      "text/csv", key="c_dl_manifest", on_click=auth.record, args=("export",),
                      kwargs={"file": "cleaned-manifest.csv", "cases": len(manifest)}, width="stretch",
                      help="Every case except the excluded ones, as a corpus the build reads.")
    b.download_button("Exclusion list CSV", exclusion_list(meta, out).to_csv(index=False).encode(),
                      "exclusions.csv", "text/csv", key="c_dl_excl", on_click=auth.record, args=("export",),
                      kwargs={"file": "exclusions.csv", "cases": len(out)}, width="stretch")
    decisions = decision_list(meta, state, conflicting)
    c.download_button("Decision list CSV", decisions.to_csv(index=False).encode(), "decisions.csv", "text/csv",
                      key="c_dl_decisions", on_click=auth.record, args=("export",),
                      kwargs={"file": "decisions.csv", "cases": len(decisions)}, width="stretch",
                      help="Every current decision (ok, wrong, exclude) with curator, time, note and conflicts.")
    st.caption("Rebuild from the cleaned manifest with:")
    st.code(BUILD_HINT.format(csv="cleaned-manifest.csv"), language="bash", wrap_lines=True)


if st.session_state.get("c_curator") and not curate_state.CURATOR.fullmatch(st.session_state["c_curator"]):
    st.error("The curator name may only hold letters, digits, '_', '.' or '-' (up to 40 characters).")
    st.session_state["c_curator"] = ""
controls()
if "c_error" in st.session_state:
    st.error(st.session_state.pop("c_error"))
check = st.session_state["c_check"]
table, thresholds, note = curate_loaders.check_table(bundle_dir, check, curate_state.column("c_label"),
                                                     curate_state.column("c_split"))
decisions, problems = read_decisions(reviews)
state, conflicting = current(decisions), conflicts(decisions)
if note:
    st.info(note)
else:
    st.text("Thresholds: " + ", ".join(f"{k} = {v}" for k, v in thresholds.items()))  # column names: plain text
    terms(SPECS[check])
    cases(table, SPECS[check], state, thresholds.get("k"), conflicting)
    collections_ui.add_form(bundle_dir, "c", {"flagged": list(table.loc[table["flagged"], "id"].astype(str))},
                            "curate", f"flagged by the Curate check {SPECS[check].page_title} ({check})",
                            title="Add the flagged cases of this check to a collection",
                            known_by=str(st.session_state.get("c_curator") or ""))
st.divider()
exports(state, conflicting, problems)
STATE.save()  # last: the page number is clamped to the pages there are while the cards are drawn

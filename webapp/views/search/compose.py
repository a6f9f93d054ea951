"""The Search page's composed query, relevance feedback, rank by a finding and "add to a collection" (UI only).

State in the URL (plain values): ``and`` / ``not`` (extra positive and negative phrases, one per line), ``w``
(their weight), ``excl`` (the exclusion threshold of the negative phrases; absent = a penalty), ``rank`` and
``minm`` (a finding and its minimum margin), ``rel`` / ``nrel`` (the feedback marks, so Back undoes a round),
``marked`` and ``round``. The scoring is :mod:`retrieval.engine.compose`; the per-part scores are drawn as a table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.engine.compose import MAX_PARTS, QueryPart
from cxr_explorer.retrieval.engine.engine import ComposedResult, Engine
from cxr_explorer.retrieval.engine.feedback import MARKED
from cxr_explorer.retrieval.engine.findings import FindingRank
from cxr_explorer.webapp import collections_ui, page_state

MARKED_LABELS = {"pin": "pin relevant, hide the rest", "hide": "hide all marked", "rank": "rank them too"}
RESULT = "_s_composed"  # session key: the last composed result (for the explanation table)


def fields() -> list[page_state.Field]:
    """The URL fields of the composed query and the feedback marks."""
    return [
        page_state.text_field("s_and", "and"),
        page_state.text_field("s_not", "not"),
        page_state.float_field("s_w", "w", 1.0, 0.05, 100.0),
        page_state.float_field("s_excl", "excl", None, -1.0, 1.0),
        page_state.text_field("s_rank", "rank"),
        page_state.float_field("s_minm", "minm", None, -2.0, 2.0),
        page_state.list_field("s_rel", "rel"),
        page_state.list_field("s_nrel", "nrel"),
        page_state.choice_field("s_marked", "marked", MARKED, "pin"),
        page_state.int_field("s_round", "round", 0, 0, 1000),
    ]


def _lines(key: str) -> list[str]:
    return [line.strip() for line in str(st.session_state.get(key) or "").splitlines() if line.strip()]


def active() -> bool:
    """True when the query needs the composed path."""
    s = st.session_state
    return bool(_lines("s_and") or _lines("s_not") or s.get("s_rank", "").strip() or s.get("s_rel")
                or s.get("s_nrel"))


def controls() -> None:
    """Extra phrases, negatives (penalty or exclusion), the finding to rank by."""
    s = st.session_state
    with st.expander("Compose: more phrases, negatives, rank by a finding" + (" (active)" if active() else ""),
                     expanded=active()):
        a, b = st.columns(2)
        a.text_area("And also (one phrase per line)", key="s_and", height=80,
                    placeholder="cardiomegaly", on_change=_reset)
        b.text_area("But not (one phrase per line)", key="s_not", height=80, placeholder="pneumothorax",
                    on_change=_reset)
        c, d, e = st.columns(3)
        c.number_input("Weight of these phrases", min_value=0.05, max_value=100.0, step=0.05, key="s_w",
                       on_change=_reset)
        _optional_slider(d, "Exclude instead of penalise", "s_excl", 0.2, "Exclusion threshold (cosine)", (-1.0, 1.0),
                         "Drop a hit whose cosine with a 'but not' phrase is above the threshold.")
        e.text_input("Rank by a finding", key="s_rank", placeholder="pleural effusion", on_change=_reset,
                     help="Sort the hits by the finding's zero-shot margin (positive minus negative prompts' cosine).")
        if s.get("s_rank", "").strip():
            _optional_slider(e, "Minimum margin", "s_minm", 0.0, "Margin ≥", (-0.5, 0.5))


def _optional_slider(col: Any, toggle: str, key: str, default: float, label: str, bounds: tuple[float, float],
                     help_text: str | None = None) -> None:
    """A toggle in ``col`` and, while it is on, a slider on ``key``; the session holds None for ``key`` while off.
    The toggle is drawn from ``key`` on every run, so a link or Back that sets ``key`` sets the toggle too."""
    s = st.session_state
    switch = f"{key}_on"
    s[switch] = s.get(key) is not None

    def flip() -> None:
        s[key] = default if s[switch] else None
        _reset()

    col.toggle(toggle, key=switch, help=help_text, on_change=flip)
    if s.get(key) is not None:
        col.slider(label, bounds[0], bounds[1], step=0.01, key=key, on_change=_reset)


def _reset() -> None:
    st.session_state["s_page"] = 1


def parts(kind: str, value: object) -> list[QueryPart]:
    """The base query (text, image or case) plus the extra phrases as parts."""
    s = st.session_state
    base_kind = {"text": "text", "image": "image", "case": "id"}[kind]
    out = [QueryPart(base_kind, value if isinstance(value, bytes) else str(value))]  # type: ignore[arg-type]
    weight = float(s.get("s_w") or 1.0)
    out += [QueryPart("text", p, weight=weight) for p in _lines("s_and")]
    excl = s.get("s_excl")
    out += [QueryPart("text", p, weight=weight, negative=True, exclude_above=excl) for p in _lines("s_not")]
    return out[:MAX_PARTS + 1]  # one over the limit is refused by the engine with its message


def run(engine: Engine, kind: str, value: object, common: dict[str, Any], dup: float | None) -> list:
    """Run the composed query; keeps the result for :func:`explain` and returns the hits."""
    s = st.session_state
    finding = None
    if s.get("s_rank", "").strip():
        finding = FindingRank(s["s_rank"].strip(), min_margin=s.get("s_minm"))
    result = engine.search_composed(parts(kind, value), hide_duplicates=dup, relevant=list(s.get("s_rel") or []),
                                    not_relevant=list(s.get("s_nrel") or []), marked=s.get("s_marked", "pin"),
                                    finding=finding, **common)
    s[RESULT] = result
    return [h.hit for h in result.hits]


def explain(shown: list) -> None:
    """Why each shown hit was kept (its per-part cosines and contributions) and which cases a threshold dropped."""
    result: ComposedResult | None = st.session_state.get(RESULT)
    if result is None:
        return
    ids = {h.id for h in shown}
    rows = []
    for h in result.hits:
        if h.hit.id not in ids:
            continue
        row: dict[str, Any] = {"rank": h.hit.rank, "id": h.hit.id, "score": round(h.score, 4),
                               "base": round(h.base, 4)}
        if h.margin is not None:
            row["margin"] = round(h.margin, 4)
        if h.pinned:
            row["pinned"] = True
        for p in h.parts:
            row[f"{p.part} cos"] = round(p.similarity, 4)
            row[f"{p.part} adds"] = round(p.contribution, 4)
        rows.append(row)
    with st.expander("Why these hits (cosine with each part, and what it added)"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        if result.dropped:
            st.caption("Dropped: their cosine with a 'but not' phrase is above the threshold.")
            st.dataframe(pd.DataFrame([{"id": d.id, "would score": round(d.base, 4), "part": d.part,
                                        "cos": round(d.similarity, 4), "threshold": d.threshold}
                                       for d in result.dropped]), hide_index=True, width="stretch")


def feedback(shown: list) -> None:
    """Mark hits relevant / not relevant and re-rank (a feedback round: Rocchio on the stored vectors)."""
    s = st.session_state
    rel, nrel = list(s.get("s_rel") or []), list(s.get("s_nrel") or [])
    ids = list(dict.fromkeys([*rel, *nrel, *(h.id for h in shown)]))
    s["s_rel_pick"], s["s_nrel_pick"] = rel, nrel  # the marks in the URL (Back undoes a round)
    with st.form("s_feedback", border=True):
        st.markdown(f"**Relevance feedback** (round {int(s.get('s_round') or 0)}): mark hits, then re-rank.")
        a, b, c = st.columns([3, 3, 2])
        a.multiselect("Relevant", ids, key="s_rel_pick")
        b.multiselect("Not relevant", ids, key="s_nrel_pick")
        c.radio("Marked cases", MARKED, key="s_marked", format_func=MARKED_LABELS.get)
        st.form_submit_button("Re-rank with these marks", on_click=_apply_marks)
    if rel or nrel:
        st.button("Clear the marks", on_click=_clear_marks, type="tertiary")


def _apply_marks() -> None:
    s = st.session_state
    s["s_rel"] = list(s.get("s_rel_pick") or [])
    s["s_nrel"] = [i for i in (s.get("s_nrel_pick") or []) if i not in s["s_rel"]]
    s["s_round"] = int(s.get("s_round") or 0) + 1
    s["s_page"] = 1


def _clear_marks() -> None:
    st.session_state.update(s_rel=[], s_nrel=[], s_round=0, s_page=1)


def add_to_collection(bundle_dir: str, shown: list, everything: list, query: str) -> None:
    """Add this page's hits (or all hits so far) to a named collection beside the bundle."""
    rounds = int(st.session_state.get("s_round") or 0)
    source, detail = ("feedback", f"{query} (feedback round {rounds})") if rounds else ("query", query)
    collections_ui.add_form(bundle_dir, "s", {"this page": [h.id for h in shown],
                                              "all hits so far": [h.id for h in everything]}, source, detail)

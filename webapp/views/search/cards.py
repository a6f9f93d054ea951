"""Result cards of the Search page: compact thumbnail grid, text hit list, results line, pager and the case dialog.

Every user or corpus text (ids, reports, metadata, queries) is shown through :func:`streamlit.text`,
:func:`streamlit.html` with escaped text, or Markdown-escaped (:func:`webapp.display.md_escape`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.engine.engine import Engine
from cxr_explorer.webapp import display, loaders
from cxr_explorer.webapp.views.grounding import state as grounding_state
from cxr_explorer.webapp.views.search import state as search_state

GRID_COLUMNS = 6
CARD_CSS = """<style>
.cxr-line{font-size:0.78rem;line-height:1.2;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;margin:0}
.cxr-line.cxr-hit{white-space:normal;overflow-wrap:anywhere}
.cxr-caption{font-size:0.875rem;color:rgba(49,51,63,0.6);margin:0}
@media (hover:none){.cxr-hover-only{display:none}}
.cxr-report{font-size:0.95rem;line-height:1.5}
.cxr-report mark{background:#ffe08a;padding:0 2px}
</style>"""


def style() -> None:
    """The cards' CSS, once per page (a style-only ``st.html`` takes no space)."""
    st.html(CARD_CSS)


def line(text: str, title: str = "", css: str = "") -> str:
    """One escaped line of small text, cut with an ellipsis (the ``cxr-hit`` line, which holds the id, wraps
    instead); ``title`` shows in full on hover."""
    return (f"<p class='cxr-line {css}' title='{display.html_text(title or text)}'>"
            f"{display.html_text(text)}</p>")


def hit_buttons(hit: Any, key: str) -> None:
    """A hit's two compact actions side by side: open the case (where "search with report" and "ground" live too)
    and similar cases."""
    with st.container(horizontal=True, gap=None):
        st.button("Open", key=f"open_{key}", on_click=search_state.open_case, args=(hit.id,), width="stretch",
                  type="tertiary")
        st.button("Similar", key=f"sim_{key}", on_click=search_state.use_case, args=(hit.id,), width="stretch",
                  type="tertiary")


def _alt(hit: Any) -> str:
    return f"Chest X-ray {hit.id}, result {hit.rank}, similarity {hit.score:.3f}"


def facet_line(metadata: dict[str, Any], columns: Sequence[str]) -> str:
    """``PA · COVID-19 · M · 54``: the hit's values of the facet columns, in one line."""
    return " · ".join(str(metadata[c]) for c in columns if metadata.get(c) not in (None, "", []))


def image_grid(engine: Engine, hits: Sequence[Any], overlays: list[bytes] | None,
               columns: Sequence[str] = ()) -> None:
    """Thumbnails with rank, similarity and id in one line (metadata and report on hover), ``GRID_COLUMNS`` a row.
    A card is the image, one escaped HTML block (two lines) and a row of two buttons: few elements per hit."""
    style()
    for start in range(0, len(hits), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS, gap="small")
        for col, i in zip(cols, range(start, min(start + GRID_COLUMNS, len(hits))), strict=False):
            hit = hits[i]
            with col.container(border=True, gap="small"):
                image = overlays[i] if overlays is not None else engine.cases.thumbnail(hit.row)
                hover = " · ".join(x for x in (display.meta_line(hit.metadata, 8),
                                               display.snippet(hit.matched_text or hit.report, 300)) if x)
                facets = facet_line(hit.metadata, columns) or display.meta_line(hit.metadata) or "(no metadata)"
                display.image(image, _alt(hit))
                st.html(line(f"#{hit.rank} · {hit.score:.3f} · {hit.id}", f"{hit.id}: {hover}", "cxr-hit")
                        + line(facets, hover))
                hit_buttons(hit, f"{i}_{hit.row}")


def text_list(engine: Engine, hits: Sequence[Any], overlays: list[bytes] | None) -> None:
    """Report / sentence hits: a small thumbnail, the matched text (3 lines at most) and the actions."""
    style()
    for i, hit in enumerate(hits):
        with st.container(border=True, gap="small"):
            left, right = st.columns([1, 9], gap="small")
            image = overlays[i] if overlays is not None else engine.cases.thumbnail(hit.row)
            with left:
                display.image(image, _alt(hit))
            with right:
                st.html(line(f"#{hit.rank} · similarity {hit.score:.3f} · {hit.id} · "
                             f"{display.meta_line(hit.metadata)}", css="cxr-hit"))
                st.text(display.snippet(hit.matched_text or hit.report, 300) or "(no report)")
                with st.container(width=240):
                    hit_buttons(hit, f"{i}_{hit.row}")


def results_header(hits: Sequence[Any], page: int, per_page: int, total: int, kind: str, value: object) -> None:
    """``Results 13–24 of 537 matching · text query “…”`` (query escaped)."""
    first = per_page * (page - 1) + 1
    noun = "result" if len(hits) == 1 else "results"
    query = f" · {kind} query “{display.md_escape(display.snippet(str(value), 80))}”" if kind != "image" else \
        " · image query"
    st.markdown(f"**{noun.capitalize()} {first}–{first + len(hits) - 1}** of {total} matching{query}")


def _go(page: int) -> None:
    st.session_state["s_page"] = page


def pager(page: int, more: bool) -> None:
    """Previous / next page buttons."""
    with st.container(horizontal=True):
        st.button("Previous page", key="page_prev", disabled=page <= 1, on_click=_go, args=(page - 1,))
        st.button("Next page", key="page_next", disabled=not more, on_click=_go, args=(page + 1,))


def highlighted_report(engine: Engine, bundle_dir: str, row: int, query: str) -> None:
    """The full report, the sentences most similar to the text query marked (escaped HTML, no Markdown)."""
    case = engine.case(row)
    if not case.report:
        st.text("(no report)")
        return
    marked: set[int] = set()
    scores: list[float] = []
    if query and case.sentences:
        scores = loaders.sentence_scores(bundle_dir, row, query)
        best = max(scores) if scores else 0.0
        marked = {i for i, s in enumerate(scores) if s >= best - 0.02}
    parts = []
    for i, sentence in enumerate(case.sentences or [case.report]):
        text = display.html_text(sentence)
        parts.append(f"<mark title='similarity {scores[i]:.3f}'>{text}</mark>" if i in marked else text)
    st.html(CARD_CSS + "<div class='cxr-report'>" + " ".join(parts) + "</div>")
    if marked:
        st.caption("Highlighted: the sentence(s) most similar to the text query.")


RERUN_APP = "_case_dialog_rerun_app"


def _whole_app(action: Any, arg: str) -> None:
    """Run a hit action from the dialog, then have the dialog rerun the whole app (see ``case_dialog``)."""
    action(arg)
    st.session_state[RERUN_APP] = True


def case_dialog(engine: Engine, bundle_dir: str, case_id: str, query: str, columns: Sequence[str] = ()) -> None:
    """The opened case in a dialog (in view wherever the user scrolled): large image, report, metadata, actions."""

    @st.dialog(f"Case {display.md_escape(case_id)}", width="large", on_dismiss=lambda: search_state.open_case(None))
    def body() -> None:
        if st.session_state.pop(RERUN_APP, False):
            st.rerun(scope="app")  # the dialog is a fragment: an action in it reruns only it, unless asked
        try:
            row = engine.row_of(case_id)
        except Exception as exc:  # an unknown id from a link: say so in plain words
            st.error(display.plain_message(exc, bundle_dir))
            return
        case = engine.case(row)
        if columns:
            st.text(facet_line(case.metadata, columns))
        left, right = st.columns([1, 1])
        png, ok = loaders.display_image(bundle_dir, row, 1024)
        with left:
            display.image(png, f"Chest X-ray {case.id}")
            if ok:  # a phone has no right-click: the hint shows only where a pointer can hover
                st.html(CARD_CSS + f"<p class='cxr-caption'>{case.width} × {case.height} px<span "
                        "class='cxr-hover-only'> · right-click to open full size</span></p>")
            else:
                st.caption("original image unreadable; showing the stored thumbnail")
        with right:
            st.markdown("**Report**")
            highlighted_report(engine, bundle_dir, row, query)
            st.markdown("**Metadata**")
            st.dataframe(pd.DataFrame([{"field": k, "value": str(v)} for k, v in case.metadata.items()]),
                         hide_index=True, width="stretch")
            a, b, c = st.columns(3)
            a.button("Similar cases", key="panel_sim", on_click=_whole_app, args=(search_state.use_case, case.id))
            b.button("Search with report", key="panel_rep", disabled=not case.report, on_click=_whole_app,
                     args=(search_state.use_report, case.report))
            if c.button("Ground this case", key="panel_ground"):
                params = grounding_state.prepare(case.id, query)
                search_state.open_case(None)
                st.switch_page("views/grounding/page.py", query_params=params)

    body()

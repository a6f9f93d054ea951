"""The Grounding page's state (a :class:`webapp.page_state.PageState`): image source, case, phrases, colour map,
opacity, isolines and range. An upload cannot live in a URL: ``src=upload`` only marks that the view used one."""

from __future__ import annotations

from cxr_explorer.webapp import page_state

SOURCES = ("Corpus case", "Upload")
COLORMAPS = ("RdBu_r", "viridis", "gray", "RdBu", "viridis_r")
DEFAULT_PHRASES = "pleural effusion"



def state(first_case: str = "") -> page_state.PageState:
    """The Grounding page's state; ``first_case`` (the bundle's first id) is the default case, left out of the URL,
    so that opening the page adds no history entry of its own."""
    return page_state.PageState("grounding", (
        page_state.Field("g_source", "src", "Corpus case", lambda v: {"upload": "Upload"}.get(v[0], "Corpus case"),
                lambda v: ["upload"] if v == "Upload" else ["case"]),
        page_state.text_field("g_case", "gcase", first_case),
        page_state.text_field("g_phrases", "phrases", DEFAULT_PHRASES),
        page_state.choice_field("g_cmap", "cmap", COLORMAPS, "RdBu_r"),
        page_state.float_field("g_alpha", "alpha", 0.5, 0.0, 1.0),
        page_state.bool_field("g_iso", "iso"),
        page_state.bool_field("g_fit", "fit", True),
        page_state.range_field("g_range", "range", (-1.0, 1.0), -1.0, 1.0),
    ))


def prepare(case_id: str, query: str) -> page_state.Params:
    """Before switching to Grounding from a case: that case, and the search query as the phrase when there is one.
    Returns the Grounding URL parameters to switch with."""
    values: dict[str, object] = {"g_source": "Corpus case", "g_case": case_id}
    if query.strip():
        values["g_phrases"] = query.strip()
    return state().set(**values)

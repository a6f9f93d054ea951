"""Entry file of the cxr-explorer app: bundle selection, the model banner and navigation between the pages.

Started by ``cxr-explorer app DIR [DIR ...]``; the bundle folders come from ``$CXR_EXPLORER_BUNDLES`` (or script
args). The URL may name a bundle only by its folder name among those configured; no path from a URL is opened.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from cxr_explorer.retrieval.bundle.reader import BundleError
from cxr_explorer.retrieval.bundle.store.errors import DamagedBundleError
from cxr_explorer.retrieval.inputs.images import ImageLoadError
from cxr_explorer.retrieval.models.registry import UnknownModelError
from cxr_explorer.retrieval.models.weights import WeightsChecksumError, WeightsFormatError, WeightsNotFoundError
from cxr_explorer.webapp import auth, display, loaders
from cxr_explorer.webapp.display import RESEARCH_ONLY
from cxr_explorer.webapp.page_state import Field, PageState, link_params
from cxr_explorer.webapp.version_notice import newer_version_notice

PAGES_DIR = Path(__file__).parent / "views"  # not "pages": Streamlit would serve a pages/ folder
# as its own multipage app to the first browser that opens a page link on a fresh server, skipping this file
PAGE_ICON = "🩻"  # an emoji favicon is drawn in the page (a :material/…: page icon is fetched from fonts.gstatic.com)
SETUP_ERRORS = (BundleError, UnknownModelError, WeightsChecksumError, WeightsFormatError, WeightsNotFoundError,
                ImageLoadError, FileNotFoundError, RuntimeError)


def choose_bundle(dirs: list[str]) -> str:
    """The selected bundle folder: the URL's ``bundle`` name among those configured (the first one is the default,
    left out of URLs), kept in the session as ``bundle_choice`` (the selector itself is drawn by each page's header:
    entry-file widgets do not keep their value under ``st.navigation`` in Streamlit 1.67). A name the app does not
    serve gets a warning that names it, and the first bundle is shown."""
    names = [Path(d).name for d in dirs]
    state = bundle_state(names)
    state.restore()
    asked = st.query_params.get_all("bundle")
    choice = min(int(st.session_state["bundle_choice"]), len(dirs) - 1)
    if asked and asked[0] not in names:
        asked_name = f"“{display.md_escape(asked[0])}”" if asked[0].strip() else "(an empty name)"
        st.warning(f"No bundle {asked_name} in this app; showing "
                   f"{display.md_escape(names[choice])}. It serves: "
                   f"{', '.join(display.md_escape(n) for n in names)}.")
    state.save()
    return dirs[choice]


def bundle_state(names: list[str]) -> PageState:
    """The app's shared state: the bundle, by folder name in the URL, by position in the session."""

    def parse(values: list[str]) -> int:
        return names.index(values[0])  # ValueError for a name the app does not serve: the default

    return PageState("app", (Field("bundle_choice", "bundle", 0, parse, lambda i: [names[int(i)]]),), shared=True)


def main() -> None:
    st.set_page_config(page_title="cxr-explorer", page_icon=PAGE_ICON, layout="wide")
    auth.guard()  # with sign-in on, nothing below runs for a person who is not signed in and listed
    dirs = loaders.bundle_dirs()
    if not dirs:
        st.error("No bundle given. Start the app with `cxr-explorer app BUNDLE_DIR`.")
        st.caption(RESEARCH_ONLY)
        st.stop()
    bundle_dir = choose_bundle(dirs)
    try:
        with st.spinner("Opening the bundle…"):
            engine = loaders.engine(bundle_dir, *loaders.engine_options())
    except SETUP_ERRORS as exc:
        st.error(f"Cannot open bundle {display.md_escape(Path(bundle_dir).name)}: "
                 f"{display.plain_message(exc, bundle_dir)}")
        st.caption(RESEARCH_ONLY)
        st.stop()
    st.session_state["bundle_dir"] = bundle_dir
    pages = [
        st.Page(PAGES_DIR / "search" / "page.py", title="Search", url_path="search", icon=":material/search:",
                default=True),
        st.Page(PAGES_DIR / "grounding" / "page.py", title="Grounding", url_path="grounding",
                icon=":material/my_location:"),
        st.Page(PAGES_DIR / "compare" / "page.py", title="Compare", url_path="compare", icon=":material/compare:"),
        st.Page(PAGES_DIR / "map" / "page.py", title="Map", url_path="map", icon=":material/scatter_plot:"),
        st.Page(PAGES_DIR / "curate" / "page.py", title="Curate", url_path="curate", icon=":material/rule:"),
        st.Page(PAGES_DIR / "collections" / "page.py", title="Collections", url_path="collections",
                icon=":material/bookmarks:"),
        st.Page(PAGES_DIR / "about" / "page.py", title="About", url_path="about", icon=":material/info:"),
    ]
    current = st.navigation(pages, position="hidden")
    nav_links(pages)
    st.sidebar.divider()
    st.sidebar.caption(f"Bundle **{display.md_escape(Path(bundle_dir).name)}** · {engine.facts.count} cases · "
                       f"model {display.md_escape(engine.facts.model_name)}")
    st.sidebar.caption(RESEARCH_ONLY)
    newer_version_notice(bundle_dir, engine)
    try:
        current.run()
    except DamagedBundleError as exc:  # a data file failed its check mid-page (e.g. a thumbnail's block)
        st.error(display.plain_message(exc, bundle_dir))
        st.caption(RESEARCH_ONLY)


def nav_links(pages: list[StreamlitPage]) -> None:
    """The page links, each carrying that page's state as the user left it (see webapp/page_state.py), so that
    arriving on a page adds one history entry and shows what the user left there."""
    for page in pages:
        st.sidebar.page_link(page, label=page.title, icon=page.icon or None,
                             query_params=link_params(page.title.lower()))


main()

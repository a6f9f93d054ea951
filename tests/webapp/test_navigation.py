"""Headless (AppTest): the URL is followed on every run where it changed (Back to the state before the first change
included), paging never ends on an empty page, an unknown bundle name is named, and the Compare page always shows
its phrases."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_explorer.webapp.settings import BUNDLES_ENV, bundles_value
from tests.webapp.test_app_pages import start


def back_to(at: AppTest, params: dict) -> AppTest:
    """What Back does: the same page runs again with the older query string."""
    at.query_params.clear()
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def results_line(at: AppTest) -> str:
    return next(str(m.value) for m in at.markdown if re.match(r"\*\*Results? \d+", str(m.value)))


def next_button(at: AppTest):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == "Next page")


# ----- Back -----------------------------------------------------------------------------------------------------

def test_back_after_the_first_search_shows_the_empty_search(env) -> None:
    at = start()
    at.text_area(key="s_text").set_value("pleural effusion")
    next(b for b in at.button if b.label == "Search").click()
    at.run()
    assert at.query_params.get("q") == "pleural effusion"
    back_to(at, {})
    assert at.text_area(key="s_text").value == ""
    assert any("Type a query" in str(i.value) for i in at.info)
    assert "q" not in at.query_params  # Back is followed, not rewritten to the search


def test_back_undoes_flagged_only_on_curate(env) -> None:
    at = start("curate")
    at.radio(key="c_show").set_value("flagged").run()
    assert at.query_params.get("c_show") == "flagged"
    back_to(at, {})
    assert at.radio(key="c_show").value == "all"
    assert "c_show" not in at.query_params


def test_a_link_is_followed_without_being_rewritten(env) -> None:
    at = start("grounding", {"gcase": "nope", "phrases": "edema"})
    assert any("No case “nope”" in str(w.value) for w in at.warning)
    assert at.selectbox(key="g_case").value == "case0"
    assert at.query_params.get("gcase") == "nope"  # opening a link writes no history entry of its own
    at.text_input(key="g_phrases").set_value("nodule").run()
    assert at.query_params.get("phrases") == "nodule" and "gcase" not in at.query_params


# ----- paging -----------------------------------------------------------------------------------------------------

def test_no_next_page_on_the_last_full_page(env) -> None:
    at = start(params={"q": "effusion", "k": "4", "page": "2"})
    assert results_line(at).startswith("**Results 5–8** of 8")
    assert next_button(at).disabled


@pytest.mark.parametrize("page", ["4", "99999"])
def test_a_page_past_the_results_shows_the_last_page(env, page: str) -> None:
    at = start(params={"q": "effusion", "k": "3", "page": page})
    assert results_line(at).startswith("**Results 7–8** of 8")
    assert next_button(at).disabled
    assert not any("No results" in str(i.value) for i in at.info)
    next(b for b in at.button if b.label == "Previous page").click().run()
    assert results_line(at).startswith("**Results 4–6**")
    assert at.query_params.get("page") == "2"


# ----- bundle names -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["nope", "COVID-T", ""])
def test_an_unknown_bundle_name_is_named(env, bundle_dir: Path, name: str) -> None:
    at = start(params={"bundle": name})
    warnings = [str(w.value) for w in at.warning]
    shown = f"“{name.replace('-', chr(92) + '-')}”" if name else "(an empty name)"
    assert any(w.startswith(f"No bundle {shown} in this app; showing {bundle_dir.name}") for w in warnings), warnings


def test_the_chosen_bundle_is_in_the_url_and_the_default_is_not(bundle_dir: Path, tmp_path: Path) -> None:
    second = tmp_path / "second"
    shutil.copytree(bundle_dir, second)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BUNDLES_ENV, bundles_value([str(bundle_dir), str(second)]))
        at = start()
        assert "bundle" not in at.query_params
        at.selectbox(key="bundle_pick").set_value(1).run()
        assert at.query_params.get("bundle") == "second"
        assert any("Bundle **second**" in str(c.value) for c in at.sidebar.caption)
        back_to(at, {})
        assert any(f"Bundle **{bundle_dir.name}**" in str(c.value) for c in at.sidebar.caption)
        assert not at.warning


# ----- Compare ----------------------------------------------------------------------------------------------------

def test_compare_shows_its_phrases_before_any_image_and_keeps_them(env) -> None:
    at = start("compare")
    assert at.text_input(key="cmp_phrases").value == "pleural effusion; consolidation"
    at.text_input(key="cmp_phrases").set_value("cardiomegaly").run()
    assert at.query_params.get("cmp_phrases") == "cardiomegaly"
    at.radio(key="cmp_src").set_value("Two uploads").run()
    assert at.text_input(key="cmp_phrases").value == "cardiomegaly"
    assert any("Upload the current image" in str(i.value) for i in at.info)
    at.radio(key="cmp_src").set_value("Corpus case").run()
    assert at.text_input(key="cmp_phrases").value == "cardiomegaly"
    assert at.query_params.get("cmp_phrases") == "cardiomegaly"

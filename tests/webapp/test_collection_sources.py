"""AppTest of "add to a collection" from the Map's selection and from a Curate check's flagged cases (the one form of
webapp/collections_ui.py, also the Search page's): source and detail recorded, the author, how many were added and
how many were already there, an existing collection picked, a name with a path separator refused in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_explorer.retrieval.collections.store import Collection
from cxr_explorer.webapp.views.map.chart import PICK
from tests.helpers.paths import APP_SCRIPT
from tests.webapp.test_app_pages import texts

TIMEOUT = 120




def start(page: str, session: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT)
    at.run()
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.switch_page(f"views/{page}/page.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(elements: object) -> list[str]:
    """The messages as read (the markdown escapes taken out)."""
    return [re.sub(r"\\(.)", r"\1", s) for s in texts(elements)]


def add(at: AppTest) -> AppTest:
    next(b for b in at.button if b.label == "Add").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_map_selection_goes_to_a_new_then_an_existing_collection(env: Path) -> None:
    at = start("map", {"map_chart": {"selection": {PICK: [{"row": 0}, {"row": 2}]}}})
    assert "2 selected cases" in texts(at.subheader)  # the chart's selection, as a click would leave it
    at.text_input(key="m_coll").set_value("from map")
    at.text_input(key="m_by").set_value("ana")
    at = add(at)
    assert "Added 2 case(s) to “from map”; 0 already there." in plain(at.success)
    members = Collection(env, "from map").members()
    assert len(members) == 2 and {e.source for e in members.values()} == {"selection"}
    assert all(e.by == "ana" and "map of images embeddings (PCA), coloured by" in e.detail for e in members.values())

    at.text_input(key="m_coll").set_value("")
    at.selectbox(key="m_coll_pick").set_value("from map")
    at = add(at)
    assert "Added 0 case(s) to “from map”; 2 already there." in plain(at.success)
    assert len(Collection(env, "from map").members()) == 2

    at.text_input(key="m_coll").set_value("../up")
    at = add(at)
    assert [e for e in plain(at.error) if "Not added" in e] == ["Not added: collection name '../up' contains a path "
                                                               "separator"]


def test_curate_flagged_cases_go_to_a_collection_as_the_curator(env: Path) -> None:
    at = start("curate")
    at.text_input(key="c_curator").set_value("ben").run()
    counts = next(c for c in texts(at.caption) if " flagged · page " in c)
    flagged = int(re.search(r"(\d+) flagged", counts).group(1))  # type: ignore[union-attr]
    assert flagged > 0
    assert any(t == "Adding as ben" for t in texts(at.text))  # the typed curator, no second name field
    at.text_input(key="c_coll").set_value("flags")
    at = add(at)
    assert f"Added {flagged} case(s) to “flags”; 0 already there." in plain(at.success)
    members = Collection(env, "flags").members()
    assert len(members) == flagged and {e.source for e in members.values()} == {"curate"}
    check = at.selectbox(key="c_check").value
    assert all(e.by == "ben" and f"({check})" in e.detail for e in members.values())
    at.text_input(key="c_coll").set_value("a\\b")
    at = add(at)
    assert any("path separator" in e for e in plain(at.error))

    at = start("collections", {"k_name": "flags"})
    assert any(t.startswith(f"flags: {flagged} case(s)") for t in texts(at.text))


def test_signed_in_author_is_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    from cxr_explorer.webapp import auth, collections_ui

    monkeypatch.setattr(auth, "identity", lambda: None)
    assert collections_ui.signed_in_author() is None  # sign-in off: the page's typed name is used
    monkeypatch.setattr(auth, "identity", lambda: auth.Identity("lead@hospital.org", "curator"))
    assert collections_ui.signed_in_author() == "lead@hospital.org"
    monkeypatch.setattr(auth, "identity", lambda: auth.Identity("dr o'neil@hospital.org", "viewer"))
    assert collections_ui.signed_in_author() == "dr_o_neil_hospital.org"

"""AppTest of the Search page's composed query, feedback round and "add to a collection", and of the Collections
page (browse, compare, add / remove, missing ids, export), on a tiny-random bundle of its own (collections are
written beside it)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from cxr_explorer.retrieval.collections.store import Collection
from tests.webapp.test_app_pages import card_titles, start, texts


def submit(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def why_tables(at: AppTest) -> list:
    return [d.value for d in at.dataframe]


def test_composed_query_from_the_url_explains_and_excludes(env: Path) -> None:
    at = start(params={"q": "pleural effusion", "not": "pneumothorax", "excl": "-1"})
    assert card_titles(at) == []  # every case is above -1 with the negative phrase: all dropped
    at = start(params={"q": "pleural effusion", "not": "pneumothorax", "w": "0.5", "rank": "cardiomegaly"})
    assert len(card_titles(at)) == 8
    why = why_tables(at)[0]
    assert {"score", "base", "margin", 'not text "pneumothorax" x0.5 cos'} <= set(why.columns)
    assert list(why["margin"]) == sorted(why["margin"], reverse=True)


def test_the_exclusion_and_minimum_margin_toggles_show_and_drop_their_sliders(env: Path) -> None:
    at = start(params={"q": "pleural effusion", "not": "pneumothorax", "excl": "-1", "rank": "cardiomegaly"})
    exclude = next(t for t in at.toggle if t.label == "Exclude instead of penalise")
    assert exclude.value and [x.value for x in at.slider if x.label == "Exclusion threshold (cosine)"] == [-1.0]
    exclude.set_value(False).run()
    assert not [x for x in at.slider if x.label == "Exclusion threshold (cosine)"]
    assert at.session_state["s_excl"] is None and len(card_titles(at)) == 8  # a penalty again: nothing dropped
    assert not [x for x in at.slider if x.label == "Margin ≥"]
    next(t for t in at.toggle if t.label == "Minimum margin").set_value(True).run()
    assert [x.value for x in at.slider if x.label == "Margin ≥"] == [0.0] and "minm" in at.query_params
    at.query_params.clear()  # Back: the browser re-runs the page with the URL before the toggle
    at.query_params.update({"q": "pleural effusion", "not": "pneumothorax", "rank": "cardiomegaly"})
    at.run()
    assert not next(t for t in at.toggle if t.label == "Minimum margin").value
    assert not [x for x in at.slider if x.label == "Margin ≥"] and "minm" not in at.query_params
    assert not at.exception


def test_contradictory_parts_are_one_message(env: Path) -> None:
    at = start(params={"q": "effusion", "not": "Effusion"})
    assert any("contradictory" in e for e in texts(at.error)) and card_titles(at) == []


def test_feedback_round_pins_and_back_restores(env: Path) -> None:
    at = start(params={"q": "pleural effusion"})
    before = card_titles(at)
    at.multiselect(key="s_rel_pick").select("case3")
    at.multiselect(key="s_nrel_pick").select("case1")
    at = submit(at, "Re-rank with these marks")
    titles = card_titles(at)
    assert " · case3" in titles[0] and not any(t.endswith(" · case1") for t in titles)
    assert at.query_params["rel"] in ("case3", ["case3"]) and at.query_params["round"] in ("1", ["1"])
    assert why_tables(at)[0]["pinned"].iloc[0]
    again = start(params={"q": "pleural effusion"})  # the URL without the marks: the first ranking
    assert card_titles(again) == before


def test_add_hits_to_a_collection_then_browse_compare_export(env: Path) -> None:
    at = start(params={"q": "pleural effusion", "k": "3"})
    at.text_input(key="s_coll").set_value("teaching")
    at.text_input(key="s_by").set_value("ana")
    at = submit(at, "Add")
    assert any("Added 3 case" in s for s in texts(at.success))
    members = Collection(env, "teaching").members()
    assert len(members) == 3 and {e.source for e in members.values()} == {"query"}
    assert all(e.by == "ana" and "pleural effusion" in e.detail for e in members.values())
    at.text_input(key="s_coll").set_value("a/b")
    at = submit(at, "Add")
    assert any("path separator" in e for e in texts(at.error))

    other = Collection(env, "other")
    other.add([next(iter(members)), "gone-case"], source="id", by="ben")
    at = start("collections", params={"coll": "teaching", "vs": "other"})
    assert any(t.startswith("teaching: 3 case(s)") for t in texts(at.text))
    assert [m.value for m in at.metric] == ["2", "1", "1"]
    assert [d.proto.label for d in at.get("download_button")] == ["Manifest CSV", "Ids list"]
    at = start("collections", params={"coll": "other"})
    assert any("1 case id(s) of this collection are not in this bundle" in w for w in texts(at.warning))
    assert any("gone-case" in t for t in texts(at.text))
    at.text_input(key="k_target").set_value("other")
    at.text_area(key="k_ids").set_value("case5, case6")
    at = submit(at, "Add")
    assert any("Added 2 case" in s for s in texts(at.success))
    at.text_input(key="k_target").set_value("other")
    at.text_area(key="k_ids").set_value("nope")
    at = submit(at, "Add")
    assert any("no case with id nope" in e for e in texts(at.error))
    assert set(Collection(env, "other").members()) == {next(iter(members)), "gone-case", "case5", "case6"}

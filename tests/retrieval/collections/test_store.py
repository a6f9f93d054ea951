"""Collections beside a bundle (:mod:`retrieval.collections.store`): names, append-only changes with their source
and author, a torn last line, two processes adding at once, missing ids, and ``where collection=NAME``."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from cxr_explorer.retrieval.collections.store import (
    MAX_NAME,
    Collection,
    CollectionError,
    check_name,
    collections_dir,
    list_collections,
    split_missing,
)
from cxr_explorer.retrieval.engine.engine import Engine, QueryPart
from tests.helpers.synthetic import tiny_model


@pytest.mark.parametrize(
    ("name", "message"),
    [("a/b", "path separator"), ("..\\x", "path separator"), ("x" * 10_000, f"at most {MAX_NAME}"),
     ("", "needs a name"), (".hidden", "letters, digits"), ("..", "letters, digits"), ("a\nb", "letters, digits")],
)
def test_bad_names_are_one_clear_message(name: str, message: str) -> None:
    with pytest.raises(CollectionError) as info:
        check_name(name)
    assert message in str(info.value) and "\n" not in str(info.value).replace(repr(name), "")


def test_beside_the_bundle_with_source_and_author(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    assert collections_dir(root) == tmp_path / "bundle.collections"
    coll = Collection(root, "teaching set")
    coll.add(["a", "b"], source="query", detail="text 'effusion'", by="ana")
    coll.add(["c", "a"], source="feedback", detail="round 2", by="ben")
    coll.remove(["b"], by="ana")
    members = coll.members()
    assert list(members) == ["a", "c"]
    assert members["a"].source == "feedback" and members["a"].by == "ben" and members["c"].detail == "round 2"
    entries, problems = coll.entries()
    assert [e.op for e in entries] == ["add", "add", "add", "add", "remove"] and not problems
    assert list_collections(root) == ["teaching set"] and not (root / "teaching set.jsonl").exists()
    with pytest.raises(CollectionError, match="source"):
        coll.add(["x"], source="magic")
    with pytest.raises(CollectionError, match="no collection named 'other'; collections: teaching set"):
        Collection(root, "other").members()


def test_torn_last_line_survives(tmp_path: Path) -> None:
    coll = Collection(tmp_path / "b", "set")
    coll.add(["a"], source="id")
    with open(coll.path, "ab") as fh:
        fh.write(b'{"ts_ns": 1, "op": "add", "id": "to')  # a writer killed mid-line
    coll.add(["b"], source="id")
    entries, problems = coll.entries()
    assert [e.id for e in entries] == ["a", "b"] and len(problems) == 1 and "unreadable line" in problems[0]


def _add_many(root: str, prefix: str) -> None:
    coll = Collection(root, "shared")
    for i in range(50):
        coll.add([f"{prefix}{i}", f"{prefix}{i}x"], source="id", by=prefix)


def test_two_sessions_adding_at_once_lose_nothing(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_add_many, args=(str(tmp_path / "b"), p)) for p in ("ana", "ben")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    members = Collection(tmp_path / "b", "shared").members()
    entries, problems = Collection(tmp_path / "b", "shared").entries()
    assert len(members) == 200 and len(entries) == 200 and not problems


def test_missing_ids_are_listed_not_dropped() -> None:
    assert split_missing(["a", "gone", "c"], ["a", "b", "c"]) == (["a", "c"], ["gone"])


def test_where_collection_filters_any_search(engine_bundle: Path, tmp_path: Path) -> None:
    engine = Engine.open(engine_bundle, model=tiny_model())
    coll = Collection(engine_bundle, "pick")
    try:
        coll.add(["case1", "case3", "case5"], source="id")
        hits = engine.search_text("pleural effusion", k=7, where={"collection": "pick"})
        assert {h.id for h in hits} == {"case1", "case3", "case5"}
        hits = engine.search_text("pleural effusion", k=7, where={"collection": "pick", "sex": "M"})
        assert {h.id for h in hits} == {"case1", "case3", "case5"}
        composed = engine.search_composed([QueryPart("text", "effusion")], k=7, where={"collection": ["pick"]})
        assert {h.hit.id for h in composed.hits} == {"case1", "case3", "case5"}
        assert engine.count_matching("images", {"collection": "pick"}) == 3
        with pytest.raises(CollectionError, match="no collection named 'nope'"):
            engine.search_text("effusion", where={"collection": "nope"})
    finally:
        coll.path.unlink()

"""Composed queries, relevance feedback and rank by a finding (:mod:`retrieval.engine.compose`, ``feedback``,
``findings``): the scoring maths on hand-made vectors, then :meth:`Engine.search_composed` on the small engine bundle
(PLANTED image vectors) with the ``tiny-random`` model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cxr_explorer.retrieval.bundle.reader import BundleError
from cxr_explorer.retrieval.engine.compose import MAX_PARTS, ComposeError, QueryPart, check_parts, combine, part_scores
from cxr_explorer.retrieval.engine.engine import Engine, QueryError
from cxr_explorer.retrieval.engine.feedback import FeedbackError, rocchio
from cxr_explorer.retrieval.engine.findings import FindingRank, finding_prompts, margins
from cxr_explorer.retrieval.grounding.maps import POSITIVE_PNEUMONIA_PROMPTS
from tests.helpers.synthetic import tiny_model

EYE = np.eye(4, dtype=np.float32)


@pytest.fixture(scope="module")
def engine(engine_bundle: Path) -> Engine:
    return Engine.open(engine_bundle, model=tiny_model())


def test_combine_is_the_normalised_weighted_sum() -> None:
    q = combine([EYE[0], EYE[1]], [1.0, 3.0])
    assert np.allclose(q, np.array([1, 3, 0, 0]) / math.sqrt(10)) and math.isclose(float(np.linalg.norm(q)), 1.0,
                                                                                   rel_tol=1e-6)
    with pytest.raises(ComposeError, match="cancel"):
        combine([EYE[0], -EYE[0]], [1.0, 1.0])


def test_penalty_and_exclusion_scores() -> None:
    cands = np.stack([EYE[0], (EYE[0] + EYE[2]) / math.sqrt(2), EYE[2]])
    parts = [QueryPart("text", "a"), QueryPart("text", "c", negative=True, weight=0.5)]
    scored = part_scores(cands, EYE[0], np.stack([EYE[0], EYE[2]]), parts)
    assert np.allclose(scored.base, [1, 1 / math.sqrt(2), 0])
    assert np.allclose(scored.score, [1, 1 / math.sqrt(2) - 0.5 / math.sqrt(2), -0.5])
    assert (scored.excluded_by == -1).all()
    hard = [parts[0], QueryPart("text", "c", negative=True, exclude_above=0.5)]
    scored = part_scores(cands, EYE[0], np.stack([EYE[0], EYE[2]]), hard)
    assert scored.excluded_by.tolist() == [-1, 1, 1] and np.allclose(scored.score, scored.base)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([], "at least one part"),
        ([QueryPart("text", "x", negative=True)], "positive part"),
        ([QueryPart("text", "effusion"), QueryPart("text", " Effusion ", negative=True)], "contradictory"),
        ([QueryPart("text", "a", weight=0.0)], "above 0"),
        ([QueryPart("text", "a", weight=-1.0)], "above 0"),
        ([QueryPart("text", "a", weight=float("nan"))], "finite"),
        ([QueryPart("text", "a", weight=float("inf"))], "finite"),
        ([QueryPart("text", f"p{i}") for i in range(50)], f"at most {MAX_PARTS} parts"),
        ([QueryPart("text", "  ")], "empty"),
        ([QueryPart("text", "a"), QueryPart("text", "b", negative=True, exclude_above=2.0)], "[-1, 1]"),
        ([QueryPart("text", "a", exclude_above=0.2)], "negative parts"),
    ],
)
def test_bad_parts_are_one_clear_message(parts: list[QueryPart], message: str) -> None:
    with pytest.raises(ComposeError) as info:
        check_parts(parts)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_rocchio_moves_toward_relevant_and_is_exact_without_marks() -> None:
    q = EYE[0]
    assert np.array_equal(rocchio(q, np.zeros((0, 4)), np.zeros((0, 4))), q)
    moved = rocchio(q, EYE[[1]], EYE[[2]])
    assert moved @ EYE[1] > 0 > moved @ EYE[2] and math.isclose(float(np.linalg.norm(moved)), 1.0, rel_tol=1e-6)


def test_finding_prompts_and_margins() -> None:
    assert finding_prompts("pneumonia")[0] == POSITIVE_PNEUMONIA_PROMPTS
    pos, neg = finding_prompts("pleural effusion")
    assert "Findings consistent with pleural effusion" in pos and "There is no pleural effusion" in neg
    assert finding_prompts("x", ["mine"], ["not mine"]) == (("mine",), ("not mine",))
    assert margins(EYE[:2], EYE[0], EYE[1]).tolist() == [1.0, -1.0]
    with pytest.raises(QueryError, match="empty"):
        finding_prompts("  ")


def test_single_part_equals_plain_search(engine: Engine) -> None:
    plain = engine.search_text("pleural effusion", k=5)
    result = engine.search_composed([QueryPart("text", "pleural effusion")], k=5)
    assert [h.hit.id for h in result.hits] == [h.id for h in plain]
    assert np.allclose([h.score for h in result.hits], [h.score for h in plain], atol=1e-5)
    for h in result.hits:  # one positive part: its contribution is the whole base cosine
        assert len(h.parts) == 1 and math.isclose(h.parts[0].contribution, h.base, abs_tol=1e-5)


def test_exclusion_removes_every_hit_above_its_threshold(engine: Engine) -> None:
    neg = engine.text_embedding("pneumothorax")
    vecs = engine.cases.row_vectors()
    sims = np.sort(vecs @ neg)
    threshold = float(sims[3] + sims[4]) / 2  # between two cases: no float tie
    result = engine.search_composed([QueryPart("text", "pleural effusion"),
                                     QueryPart("text", "pneumothorax", negative=True, exclude_above=threshold)], k=7)
    kept = [h.hit.row for h in result.hits]
    assert kept and all(float(vecs[r] @ neg) <= threshold for r in kept)
    dropped = {d.row for d in result.dropped}
    assert dropped and all(float(vecs[r] @ neg) > threshold for r in dropped) and not dropped & set(kept)
    assert all(d.similarity > d.threshold == threshold for d in result.dropped)


def test_penalty_reorders_and_explains(engine: Engine) -> None:
    pos = QueryPart("text", "pleural effusion")
    plain = engine.search_composed([pos], k=7)
    neg = QueryPart("text", "pneumothorax", negative=True, weight=5.0)
    pushed = engine.search_composed([pos, neg], k=7)
    for h in pushed.hits:
        penalty = h.parts[1]
        assert math.isclose(penalty.contribution, -5.0 * max(0.0, penalty.similarity), rel_tol=1e-5)
        assert math.isclose(h.score, h.base + penalty.contribution, abs_tol=1e-5)
    assert [h.score for h in pushed.hits] == sorted((h.score for h in pushed.hits), reverse=True)
    assert {h.hit.id for h in pushed.hits} == {h.hit.id for h in plain.hits}


def test_case_part_with_text_modifier_excludes_the_case(engine: Engine) -> None:
    result = engine.search_composed([QueryPart("id", "case0"), QueryPart("text", "cardiomegaly", weight=0.5)], k=6)
    assert "case0" not in [h.hit.id for h in result.hits] and len(result.hits) == 6
    with pytest.raises(BundleError, match="nope"):
        engine.search_composed([QueryPart("id", "nope")])


def test_feedback_pins_hides_and_is_reversible(engine: Engine) -> None:
    parts = [QueryPart("text", "pleural effusion")]
    before = engine.search_composed(parts, k=7)
    result = engine.search_composed(parts, k=7, relevant=["case3"], not_relevant=["case1"])
    ids = [h.hit.id for h in result.hits]
    assert ids[0] == "case3" and result.hits[0].pinned and "case1" not in ids
    hidden = engine.search_composed(parts, k=7, relevant=["case3"], not_relevant=["case1"], marked="hide")
    assert not {"case3", "case1"} & {h.hit.id for h in hidden.hits}
    again = engine.search_composed(parts, k=7)  # no marks: the first ranking comes back exactly
    assert [h.hit.id for h in again.hits] == [h.hit.id for h in before.hits]
    with pytest.raises(FeedbackError, match="both relevant and not relevant"):
        engine.search_composed(parts, relevant=["case3"], not_relevant=["case3"])


def test_feedback_moves_the_ranking_toward_the_relevant(engine: Engine) -> None:
    parts = [QueryPart("text", "pleural effusion")]
    vecs = engine.cases.row_vectors()
    plain = engine.search_composed(parts, k=7, marked="rank")
    moved = engine.search_composed(parts, k=7, relevant=["case3"], marked="rank")
    assert float(moved.query @ vecs[3]) > float(plain.query @ vecs[3])
    rank = {h.hit.id: h.hit.rank for h in moved.hits}
    assert rank["case3"] <= {h.hit.id: h.hit.rank for h in plain.hits}["case3"]


def test_rank_by_finding_sorts_and_filters_by_margin(engine: Engine) -> None:
    parts = [QueryPart("text", "pleural effusion")]
    ranked = engine.search_composed(parts, k=7, finding=FindingRank("cardiomegaly"))
    got = [h.margin for h in ranked.hits]
    assert all(m is not None for m in got) and got == sorted(got, reverse=True)  # type: ignore[type-var]
    cut = float(np.median(np.asarray(got, dtype=float)))
    kept = engine.search_composed(parts, k=7, finding=FindingRank("cardiomegaly", min_margin=cut, sort=False))
    assert kept.hits and all(h.margin is not None and h.margin >= cut for h in kept.hits)
    assert [h.base for h in kept.hits] == sorted((h.base for h in kept.hits), reverse=True)
    plain = engine.search_text("pleural effusion", k=7)
    pairs = engine.rank_by_finding(plain, FindingRank("cardiomegaly"))
    assert [round(m, 5) for _, m in pairs] == [round(m, 5) for m in got if m is not None]
    assert [h.rank for h, _ in pairs] == list(range(1, 8))
    with pytest.raises(QueryError, match="margin"):
        engine.rank_by_finding(plain, FindingRank("cardiomegaly", min_margin=float("nan")))


def test_composed_works_for_reports_and_sentences_with_filters(engine: Engine) -> None:
    parts = [QueryPart("text", "pleural effusion"), QueryPart("text", "atelectasis", negative=True)]
    for target in ("reports", "sentences"):
        result = engine.search_composed(parts, k=3, target=target, where={"sex": "F"})  # type: ignore[arg-type]
        assert result.hits and all(h.hit.metadata["sex"] == "F" and h.hit.target == target for h in result.hits)


def test_phrases_of_a_composed_query_are_encoded_in_one_forward(engine_bundle: Path) -> None:
    fresh = Engine.open(engine_bundle, model=tiny_model())
    calls: list[int] = []
    real = fresh.model.embed_texts

    def counting(texts: list[str], normalize: bool = True) -> Any:
        calls.append(len(texts))
        return real(texts, normalize=normalize)

    fresh.model.embed_texts = counting  # type: ignore[method-assign,assignment]
    try:
        vecs = fresh.encoder.text_embeddings(["pleural effusion", "cardiomegaly", "pleural effusion", "edema"])
    finally:
        del fresh.model.embed_texts
    assert calls == [3]
    one = Engine.open(engine_bundle, model=tiny_model()).encoder
    for text, vec in zip(["pleural effusion", "cardiomegaly", "pleural effusion", "edema"], vecs, strict=True):
        assert np.allclose(vec, one.text_embedding(text), atol=1e-5)

"""Tests for :mod:`retrieval.engine.engine` on the small engine bundle (:data:`tests.helpers.bundles.ENGINE_CASES`:
PLANTED image vectors, row 6 a near-copy of row 0) and the ``tiny-random`` model. Search maths only depends on stored
vectors, so ranking assertions stay exact. The grounder alone is tested in ``test_grounder.py``."""

from __future__ import annotations

import copy
import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cxr_explorer.retrieval.bundle.reader import BundleError
from cxr_explorer.retrieval.engine import search as engine_search
from cxr_explorer.retrieval.engine.engine import Engine, QueryError
from cxr_explorer.retrieval.engine.filters import FilterError
from cxr_explorer.retrieval.grounding import maps as grounding
from cxr_explorer.retrieval.inputs.preprocess import Preprocessing
from cxr_explorer.retrieval.models import VLModel
from tests.helpers.bundles import ENGINE_CASES, model_bundle
from tests.helpers.synthetic import tiny_model

REPORTS, SIZES = ENGINE_CASES.reports, ENGINE_CASES.sizes


@pytest.fixture(scope="module")
def engine(engine_bundle: Path) -> Engine:
    return Engine.open(engine_bundle, model=tiny_model())


def test_text_search_ranks_and_scores_sorted(engine: Engine) -> None:
    hits = engine.search_text("pleural effusion", k=7)
    assert [h.rank for h in hits] == list(range(1, 8))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    expected = engine.bundle.vectors("images") @ engine.text_embedding("pleural effusion")
    assert hits[0].row == int(np.argmax(expected))
    assert hits[0].score == pytest.approx(float(expected.max()), abs=1e-5)
    assert {h.target for h in hits} == {"images"} and hits[0].path.endswith(f"case{hits[0].row}.png")
    assert set(hits[0].metadata) == {"sex", "labels", "width", "height"}


def test_k_is_validated(engine: Engine) -> None:
    for bad in (0, 1001, -3):
        with pytest.raises(QueryError, match="k must be"):
            engine.search_text("effusion", k=bad)
    assert len(engine.search_text("effusion", k=1000)) == len(SIZES)  # the bundle holds fewer than k


def test_sentence_target_returns_the_sentence(engine: Engine) -> None:
    hits = engine.search_text("Cardiomegaly with mild pulmonary edema.", k=3, target="sentences")
    assert hits[0].matched_text == "Cardiomegaly with mild pulmonary edema."
    assert hits[0].row == 3 and hits[0].report == REPORTS[3] and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(h.target == "sentences" for h in hits)


def test_report_target_skips_items_without_report(engine: Engine) -> None:
    hits = engine.search_text("No acute cardiopulmonary process.", k=10, target="reports")
    assert hits[0].row == 4 and hits[0].matched_text == REPORTS[4]
    assert 2 not in {h.row for h in hits} and len(hits) == 6


@pytest.mark.parametrize("brute_force_max", [engine_search.BRUTE_FORCE_MAX, 0])
def test_where_filter(engine: Engine, monkeypatch: pytest.MonkeyPatch, brute_force_max: int) -> None:
    monkeypatch.setattr(engine_search, "BRUTE_FORCE_MAX", brute_force_max)  # 0: over-fetch path
    hits = engine.search_text("effusion", k=10, where={"sex": ["F"], "labels": ["Effusion", "Edema"]})
    assert sorted(h.row for h in hits) == [0, 6]
    unfiltered = [h.row for h in engine.search_text("effusion", k=10) if h.row in (0, 6)]
    assert [h.row for h in hits] == unfiltered
    sent = engine.search_text("effusion", k=10, target="sentences", where={"sex": "M"})
    assert sent and {h.row for h in sent} <= {1, 3, 5}
    assert engine.search_text("effusion", where={"labels": ["Nothing"]}) == []


def test_unknown_filter_column(engine: Engine) -> None:
    with pytest.raises(FilterError, match="valid columns: sex, labels, width, height"):
        engine.search_text("effusion", where={"gender": ["F"]})


def test_search_id_excludes_itself_and_finds_planted_duplicate(engine: Engine) -> None:
    hits = engine.search_id("case0", k=3)
    assert "case0" not in [h.id for h in hits] and hits[0].id == "case6" and hits[0].score > 0.99
    assert len(engine.search_id("case0", k=10)) == len(SIZES) - 1
    sent = engine.search_id("case1", k=20, target="sentences")
    assert sent and all(h.row != 1 for h in sent)
    with pytest.raises(BundleError, match="nope"):
        engine.search_id("nope")


def test_hide_duplicates_and_duplicate_groups(engine: Engine) -> None:
    rows = [h.row for h in engine.search_text("effusion", k=7)]
    assert {0, 6} <= set(rows)
    kept = engine.search_text("effusion", k=7, hide_duplicates=0.99)
    kept_rows = [h.row for h in kept]
    assert len(kept) == 6 and len({0, 6} & set(kept_rows)) == 1
    assert [h.rank for h in kept] == list(range(1, 7))
    assert engine.search_id("case6", k=3)[0].id == "case0"
    assert "case0" not in [h.id for h in engine.search_id("case6", k=6, hide_duplicates=0.99)]  # copy of the query
    with pytest.raises(QueryError):
        engine.search_text("effusion", hide_duplicates=1.5)
    assert engine.duplicates(threshold=0.99) == [[0, 6]]
    assert engine.duplicates(threshold=1.0) == []


def test_ground_case_matches_similarity_map(engine: Engine) -> None:
    g = engine.grounder.ground_case(0, "left pleural effusion")
    w, h = SIZES[0]
    assert g.map.shape == (h, w) and (g.width, g.height) == (w, h)
    assert np.isnan(g.map[:, 0]).all() and not np.isnan(g.map[h // 2, w // 2])
    patches = torch.from_numpy(np.asarray(engine.bundle.patches()[0], dtype=np.float32))
    text = torch.from_numpy(np.array(engine.text_embedding("left pleural effusion")))
    ref = grounding.similarity_map(patches, text, w, h, 512, 480, "bilinear")
    np.testing.assert_array_equal(g.map, ref)
    assert g.grid.shape == engine.bundle.grid_shape
    text_emb = engine.text_embedding("left pleural effusion")
    assert g.score == pytest.approx(float(engine.cases.image_vector(0) @ text_emb))


def test_ground_case_reads_size_from_file_without_metadata(tmp_path: Path) -> None:
    eng = Engine.open(model_bundle(tmp_path, tiny_model(), ENGINE_CASES, sizes_in_metadata=False), model=tiny_model())
    assert eng.grounder.ground_case(1, "effusion").map.shape == (SIZES[1][1], SIZES[1][0])
    case = eng.case("case1")
    assert (case.width, case.height) == SIZES[1] and case.sentences == ["Right lower lobe consolidation.",
                                                                        "Heart size normal."]


def test_grid_heatmaps_equal_per_row_grids(engine: Engine) -> None:
    maps = engine.grounder.grid_heatmaps([3, 0, 5], "consolidation")
    assert maps.shape == (3, *engine.bundle.grid_shape)
    for got, row in zip(maps, [3, 0, 5], strict=True):
        np.testing.assert_allclose(got, engine.grounder.ground_case(row, "consolidation").grid, rtol=1e-5, atol=1e-6)
    assert engine.grounder.grid_heatmaps([], "consolidation").shape == (0, *engine.bundle.grid_shape)


class CountingModel:
    """Wraps a VLModel and counts image forwards."""

    def __init__(self, model: VLModel) -> None:
        self._model, self.forwards = model, 0

    def encode_images(self, batch: torch.Tensor) -> Any:
        self.forwards += 1
        return self._model.encode_images(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def test_upload_forward_is_cached(engine_bundle: Path) -> None:
    counting = CountingModel(tiny_model())
    eng = Engine.open(engine_bundle, model=counting)  # type: ignore[arg-type]
    data = (engine_bundle.parent / "images" / "case3.png").read_bytes()
    g1 = eng.grounder.ground_image(data, "effusion")
    g2 = eng.grounder.ground_image(data, "edema")
    eng.grounder.zero_shot_image(data)
    eng.search_image(data, k=2)
    assert counting.forwards == 1 and g1.map.shape == (88, 88) and g2.text == "edema"
    eng.grounder.ground_image(engine_bundle.parent / "images" / "case3.png", "edema")  # same content from a path
    eng.grounder.ground_image(Image.open(engine_bundle.parent / "images" / "case4.png"), "edema")
    assert counting.forwards == 2
    np.testing.assert_allclose(g1.map, eng.grounder.ground_case(3, "effusion").map, atol=2e-3)  # fp16 storage


def test_zero_shot_margin(engine: Engine) -> None:
    z = engine.grounder.zero_shot_case(2)
    assert z.margin == pytest.approx(z.positive - z.negative)
    pos = tiny_model().embed_texts(list(grounding.POSITIVE_PNEUMONIA_PROMPTS), normalize=False)
    image = torch.from_numpy(engine.cases.image_vector(2))
    assert z.positive == pytest.approx(grounding.global_prompt_score(image, pos))
    custom = engine.grounder.zero_shot_case(2, positive=["effusion"], negative=["no effusion"])
    assert custom.margin == pytest.approx(custom.positive - custom.negative)


def test_grounded_report_sentences(engine: Engine) -> None:
    out = engine.grounder.grounded_report_case(5, "Large right pleural effusion. Left basal atelectasis.")
    assert [s.text for s in out] == ["Large right pleural effusion.", "Left basal atelectasis."]
    assert out[1].index == 1 and out[1].grounding.map.shape == (SIZES[5][1], SIZES[5][0])
    assert out[0].score == pytest.approx(engine.grounder.ground_case(5, out[0].text).score)


def test_case_and_images(engine: Engine) -> None:
    case = engine.case(3)
    assert case.id == "case3" and case.report == REPORTS[3] and case.metadata["labels"] == "Cardiomegaly|Edema"
    assert engine.case("case3") == case
    assert max(Image.open(io.BytesIO(engine.cases.thumbnail(3))).size) <= 256
    assert engine.cases.full_image(3).size == SIZES[3] and engine.cases.full_image(3).mode == "L"
    with pytest.raises(QueryError):
        engine.case(99)
    with pytest.raises(QueryError):  # the one thumbnail accessor checks the row like every item accessor
        engine.cases.thumbnail(99)
    assert engine.row_of("case3") == 3 == engine.row_of(3)


def test_the_pages_read_counts_and_columns_from_the_facts(engine: Engine) -> None:
    assert engine.facts.count == len(SIZES) == len(engine.cases.ids)
    assert engine.facts.metadata_columns == ["sex", "labels", "width", "height"] == engine.bundle.metadata_columns


def test_page_facts(engine: Engine) -> None:
    assert engine.facts.name == "bundle" and engine.facts.model_name == "tiny-random"
    assert engine.facts.count == len(SIZES) and {i.target for i in engine.facts.indexes} >= {"images", "reports"}
    assert engine.cases.ids == [f"case{i}" for i in range(len(SIZES))]
    assert engine.count_matching("images", None) == len(SIZES)
    assert engine.count_matching("images", {"sex": ["F"]}) == 4
    assert engine.count_matching("sentences", {"sex": ["M"]}) == 5  # rows 1 (2 sentences), 3 (1), 5 (2)
    assert {f.column for f in engine.facets()} >= {"sex"}


def test_sentence_similarities_follow_the_case_sentences(engine: Engine) -> None:
    scores = engine.sentence_similarities(5, "Left basal atelectasis.")
    assert len(scores) == len(engine.case(5).sentences) == 2
    assert scores[1] == pytest.approx(1.0, abs=1e-4) and scores[0] < scores[1]
    assert engine.sentence_similarities(2, "effusion") == []  # row 2 has no report


def test_model_mismatch_refused(engine_bundle: Path) -> None:
    model = tiny_model()
    other = copy.copy(model)
    other.spec = type(model.spec)(**{**model.spec.__dict__, "name": "biovil"})
    with pytest.raises(BundleError, match="tiny-random"):
        Engine.open(engine_bundle, model=other)
    cropped = copy.copy(model)
    cropped.preprocessing = Preprocessing(resize=512, crop=448)
    with pytest.raises(BundleError, match="preprocessing"):
        Engine.open(engine_bundle, model=cropped)


def test_concurrent_searches_agree(engine: Engine) -> None:
    expected = [h.row for h in engine.search_text("edema", k=5)]
    results: list[list[int]] = []

    def work() -> None:
        results.append([h.row for h in engine.search_text("edema", k=5, where={"sex": ["F", "M"]})])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4

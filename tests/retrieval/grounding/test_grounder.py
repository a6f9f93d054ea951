"""The grounder on its own, without an Engine: images with a bare :class:`QueryEncoder`, bundle cases with a
:class:`CaseStore` over a bundle opened by :class:`Bundle` alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.engine.cases import CaseStore
from cxr_explorer.retrieval.engine.query_cache import QueryEncoder
from cxr_explorer.retrieval.grounding import maps as grounding
from cxr_explorer.retrieval.grounding.grounder import Grounder
from cxr_explorer.retrieval.inputs.images import ImageLoadError
from tests.helpers.bundles import ENGINE_CASES
from tests.helpers.synthetic import tiny_model

SIZES = ENGINE_CASES.sizes


def test_grounds_an_image_with_the_encoder_alone(engine_bundle: Path) -> None:
    grounder = Grounder(QueryEncoder(tiny_model()))
    path = engine_bundle.parent / "images" / "case5.png"
    g = grounder.ground_image(path, "right pleural effusion")
    w, h = SIZES[5]
    assert g.map.shape == (h, w) and g.grid.shape == (15, 15) and -1.0 <= g.score <= 1.0
    assert np.isnan(g.map).any() and not np.isnan(g.map[h // 2, w // 2])  # NaN outside the centre crop only
    report = grounder.grounded_report_image(path.read_bytes(), "Right effusion. Left atelectasis.")
    assert [s.text for s in report] == ["Right effusion.", "Left atelectasis."]
    z = grounder.zero_shot_image(path)
    assert z.margin == pytest.approx(z.positive - z.negative)


def test_case_methods_need_a_store(engine_bundle: Path) -> None:
    grounder = Grounder(QueryEncoder(tiny_model()))
    with pytest.raises(ValueError, match="no bundle"):
        grounder.ground_case(0, "effusion")
    with pytest.raises(ValueError, match="no bundle"):
        grounder.zero_shot_case(0)


def test_case_grounding_from_stored_patches_matches_the_image_forward(engine_bundle: Path) -> None:
    encoder = QueryEncoder(tiny_model())
    grounder = Grounder(encoder, CaseStore(Bundle.open(engine_bundle)))
    stored = grounder.ground_case(3, "cardiomegaly")
    uploaded = grounder.ground_image(engine_bundle.parent / "images" / "case3.png", "cardiomegaly")
    np.testing.assert_allclose(stored.map, uploaded.map, atol=2e-3)  # fp16 storage
    grids = grounder.grid_heatmaps([3, 1], "cardiomegaly")
    np.testing.assert_allclose(grids[0], stored.grid, rtol=1e-5, atol=1e-6)
    report = grounder.grounded_report_case(3, "Cardiomegaly. Mild pulmonary edema.")
    assert [s.text for s in report] == ["Cardiomegaly.", "Mild pulmonary edema."]
    assert report[1].score == pytest.approx(grounder.ground_case(3, "Mild pulmonary edema.").score)


def test_zero_shot_case_uses_the_stored_vector(engine_bundle: Path) -> None:
    model = tiny_model()
    store = CaseStore(Bundle.open(engine_bundle))
    z = Grounder(QueryEncoder(model), store).zero_shot_case(2, ["effusion"], ["no effusion"])
    image = store.image_vector(2)
    pos = model.embed_texts(["effusion"], normalize=False)
    neg = model.embed_texts(["no effusion"], normalize=False)
    expected = grounding.zero_shot_margin(torch.from_numpy(image), pos, neg)
    assert (z.positive, z.negative) == pytest.approx((expected.positive, expected.negative))


def test_a_path_string_is_an_image_never_an_id(engine_bundle: Path) -> None:
    grounder = Grounder(QueryEncoder(tiny_model()), CaseStore(Bundle.open(engine_bundle)))
    with pytest.raises(ImageLoadError, match="case0"):  # an id in the bundle, but no such file
        grounder.zero_shot_image("case0")

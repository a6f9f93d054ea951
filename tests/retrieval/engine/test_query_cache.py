"""The QueryEncoder is the one cache of query texts and prompt sets: interval prompts, zero-shot prompts and free text
are embedded through it (under its model lock) and each distinct one reaches the text encoder once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from cxr_explorer.retrieval.engine.query_cache import QueryEncoder
from cxr_explorer.retrieval.grounding.maps import global_prompt_score
from cxr_explorer.retrieval.inputs.text_embedding import mean_renormalised
from cxr_explorer.retrieval.models import VLModel
from cxr_explorer.retrieval.temporal.interval import CLASSES, interval_change, interval_prompts
from tests.helpers.synthetic import tiny_model


class CountingTextModel:
    """Wraps a VLModel and records the text batches its text encoder is given."""

    def __init__(self, model: VLModel) -> None:
        self._model = model
        self.batches: list[list[str]] = []

    def embed_texts(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        self.batches.append(list(texts))
        return self._model.embed_texts(texts, normalize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


@pytest.fixture
def counting() -> CountingTextModel:
    return CountingTextModel(tiny_model())


def _image() -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(128, generator=torch.Generator().manual_seed(3)), dim=0)


def test_interval_prompts_are_embedded_once_per_encoder(counting: CountingTextModel) -> None:
    encoder = QueryEncoder(counting)  # type: ignore[arg-type]
    first = interval_change(encoder, _image(), ("edema", "pneumonia"))
    again = interval_change(encoder, _image(), ("pneumonia", "edema"))
    assert [len(b) for b in counting.batches] == [12, 12]  # one forward per finding: its three sets of four
    assert [c.scores for c in first] == [c.scores for c in again[::-1]]
    interval_change(QueryEncoder(counting), _image(), ("edema",))  # type: ignore[arg-type]
    assert len(counting.batches) == 3  # a cache belongs to its encoder, none to the module


def test_interval_scores_are_the_renormalised_mean_of_each_class(counting: CountingTextModel) -> None:
    encoder = QueryEncoder(counting)  # type: ignore[arg-type]
    (change,) = interval_change(encoder, _image(), ("pleural effusion",))
    prompts = interval_prompts("pleural effusion")
    for cls in CLASSES:
        raw = tiny_model().embed_texts(list(prompts[cls]), normalize=False)
        assert change.scores[cls] == pytest.approx(float(_image().numpy() @ mean_renormalised(raw.numpy())),
                                                   abs=1e-6)
        assert change.scores[cls] == pytest.approx(global_prompt_score(_image(), raw), abs=1e-6)


def test_prompt_sets_share_the_prompt_cache(counting: CountingTextModel) -> None:
    encoder = QueryEncoder(counting)  # type: ignore[arg-type]
    a, b = encoder.prompt_set_embeddings([("Edema", "Pulmonary edema"), ("No edema",)])
    encoder.prompt_set_embeddings([("Edema", "Pulmonary edema"), ("No edema",)])
    assert len(counting.batches) == 1 and a.shape == b.shape == (128,) and a.dtype == np.float32
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least one prompt"):
        encoder.prompt_set_embeddings([("Edema",), ()])


def test_spacing_variants_of_a_query_are_one_text(counting: CountingTextModel) -> None:
    encoder = QueryEncoder(counting)  # type: ignore[arg-type]
    one = encoder.text_embedding("Small left effusion.")
    two = encoder.text_embedding("  Small\tleft   effusion.\n")
    assert counting.batches == [["Small left effusion."]]
    np.testing.assert_array_equal(one, two)

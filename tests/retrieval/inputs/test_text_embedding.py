"""Any text is a query: text over the encoder's limit is embedded as sentence windows, like the job's long reports."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_explorer.index.embed import Timers, embed_reports
from cxr_explorer.retrieval.curate.prompts import LabelPrompts, embed_prompts
from cxr_explorer.retrieval.engine.engine import Engine
from cxr_explorer.retrieval.engine.query_cache import QueryEncoder
from cxr_explorer.retrieval.inputs.text import clean_text
from cxr_explorer.retrieval.inputs.text_embedding import (
    embed_windows,
    encoder_text,
    mean_renormalised,
    normalise,
    plan_text,
)
from cxr_explorer.retrieval.models.text_model import TextInputError
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.synthetic import tiny_model

LONG = " ".join(f"Finding number {i} shows a small nodule in segment {i % 9} of the lung." for i in range(17))


def words(text: str) -> int:
    return len(text.split()) + 2


def test_short_text_is_one_window() -> None:
    plan = plan_text("Small effusion. No pneumothorax.", words, 512)
    assert plan.windows == ["Small effusion. No pneumothorax."] and len(plan.sentences) == 2


def test_long_text_is_packed_into_windows_without_loss() -> None:
    plan = plan_text(LONG, words, 40)
    assert len(plan.windows) > 1 and all(words(w) <= 40 for w in plan.windows)
    assert " ".join(plan.windows) == LONG


def test_embed_windows_is_the_renormalised_mean() -> None:
    vecs = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    out = embed_windows(["a", "b"], lambda ws: vecs[: len(ws)])
    assert np.allclose(out, [2**-0.5, 2**-0.5])


def test_mean_renormalised_averages_before_normalising() -> None:
    out = mean_renormalised(np.array([[3.0, 0.0], [0.0, 4.0]]))  # mean (1.5, 2) -> (0.6, 0.8)
    assert out.dtype == np.float32 and np.allclose(out, [0.6, 0.8])
    assert np.allclose(mean_renormalised(np.zeros((2, 3))), 0.0)
    for bad in (np.zeros(3), np.zeros((0, 3))):
        with pytest.raises(ValueError, match=r"\[N, D\]"):
            mean_renormalised(bad)


def test_spacing_does_not_change_the_plan() -> None:
    odd = "\t Small  effusion.\n\nNo   pneumothorax.  "
    assert plan_text(odd, words, 512) == plan_text("Small effusion. No pneumothorax.", words, 512)
    spaced = " ".join([LONG] * 3)
    assert plan_text(spaced.replace(". ", ".\n  "), words, 40) == plan_text(spaced, words, 40)
    assert encoder_text(odd) == "Small effusion. No pneumothorax."
    assert normalise(odd, True) == "small effusion. no pneumothorax"


def test_the_build_and_a_query_embed_a_long_report_alike() -> None:
    model = tiny_model()
    report = clean_text(LONG)
    built = embed_reports(model, [report], batch=8, timers=Timers()).report_emb[0]
    np.testing.assert_allclose(QueryEncoder(model).text_embedding(LONG), built, atol=1e-6)


def test_curated_prompt_sets_are_the_renormalised_mean() -> None:
    vecs = {"a": [3.0, 0.0], "b": [0.0, 4.0], "c": [0.0, -1.0]}
    out = embed_prompts([LabelPrompts("x", ("a", "b"), ("c",))], lambda ts: np.array([vecs[t] for t in ts]))
    assert np.allclose(out["x"][0], [0.6, 0.8]) and np.allclose(out["x"][1], [0.0, -1.0])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine.open(model_bundle(tmp_path_factory.mktemp("long"), tiny_model(), APP_CASES), model=tiny_model())


def test_engine_embeds_a_600_token_query_as_the_job_does(engine: Engine) -> None:
    tok = engine.model.tokenizer
    assert tok.count_tokens(LONG) > tok.max_length
    with pytest.raises(TextInputError):
        engine.model.embed_texts([LONG])
    plan = plan_text(LONG, tok.count_tokens, tok.max_length)
    expected = embed_windows(plan.windows, lambda ws: engine.model.embed_texts(ws).numpy())
    assert np.allclose(engine.text_embedding(LONG), expected, atol=1e-6)
    assert len(engine.search_text(LONG, k=3)) == 3

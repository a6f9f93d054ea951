"""Build and query embed text the same way: each report of a built bundle, given raw as a free-text query, finds its
own case first, and its query vector is the vector the build stored (short, long and oddly spaced reports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.retrieval.engine.engine import Engine
from tests.helpers.synthetic import tiny_model
from tests.helpers.text_corpus import REPORTS, build_text_bundle, stored_vectors


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_text_bundle(tmp_path_factory.mktemp("one-text-path"))


@pytest.fixture(scope="module")
def engine(bundle: Path) -> Engine:
    return Engine.open(bundle, model=tiny_model())


def _row(engine: Engine, name: str) -> int:
    return engine.row_of(f"images/{name}.png")


def test_the_corpus_covers_every_text_path(engine: Engine) -> None:
    tok = engine.model.tokenizer
    assert tok.count_tokens(REPORTS["long"]) > 3 * tok.max_length
    assert tok.count_tokens(REPORTS["short"]) < 16
    odd = REPORTS["odd"]
    assert "\t" in odd and "  " in odd and "\n" in odd and odd != odd.strip()


@pytest.mark.parametrize("name", list(REPORTS))
def test_each_report_as_a_query_finds_its_own_case_first(engine: Engine, name: str) -> None:
    hits = engine.search_text(REPORTS[name], k=len(REPORTS), target="reports")
    assert hits[0].row == _row(engine, name)
    assert hits[0].score >= 0.999
    assert hits[1].score < hits[0].score - 0.02  # a clear first, not a tie among look-alike random embeddings


@pytest.mark.parametrize("name", list(REPORTS))
def test_query_vector_is_the_stored_report_vector(bundle: Path, engine: Engine, name: str) -> None:
    vectors = stored_vectors(bundle)
    stored = vectors["report_emb"][vectors["report_rows"].tolist().index(_row(engine, name))]
    query = engine.text_embedding(REPORTS[name])
    assert float(stored @ query) >= 0.999
    np.testing.assert_allclose(query, stored, atol=1e-5)

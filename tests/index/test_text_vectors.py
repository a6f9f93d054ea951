"""A build's report and sentence vectors stay what they were: a fresh fp32 build of the text corpus
(:mod:`tests.helpers.text_corpus`: short, 90-sentence, oddly spaced reports) against the pinned ``text_vectors.npz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.helpers.text_corpus import build_text_bundle, stored_vectors

PINNED = Path(__file__).with_name("text_vectors.npz")


def test_build_stores_the_pinned_report_and_sentence_vectors(tmp_path: Path) -> None:
    fresh = stored_vectors(build_text_bundle(tmp_path))
    with np.load(PINNED) as pinned:
        for name in ("ids", "report_rows", "sentences"):
            assert fresh[name].tolist() == pinned[name].tolist(), name
        for name in ("report_emb", "sentence_emb"):
            np.testing.assert_allclose(fresh[name], pinned[name], rtol=0, atol=1e-6, err_msg=name)

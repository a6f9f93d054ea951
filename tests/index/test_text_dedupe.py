"""The job encodes each distinct text once per chunk, with results identical to encoding them one by one."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_explorer.index.embed import Timers, embed_reports
from cxr_explorer.retrieval.models import load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random", device="cpu")


def test_repeated_texts_are_encoded_once(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = tiny.embed_texts

    def counting(texts, normalize=True):
        seen.extend(texts)
        return original(texts, normalize)

    monkeypatch.setattr(tiny, "embed_texts", counting)
    reports = ["No pneumothorax.", "No pneumothorax.", "Left effusion. No pneumothorax.", ""]
    result = embed_reports(tiny, reports, batch=8, timers=Timers())
    assert sorted(seen) == sorted({"No pneumothorax.", "Left effusion.", "Left effusion. No pneumothorax."})
    assert list(result.report_rows) == [0, 1, 2]
    assert np.allclose(result.report_emb[0], result.report_emb[1])
    monkeypatch.undo()
    direct = tiny.embed_texts(["Left effusion. No pneumothorax."]).numpy()[0]
    assert np.allclose(result.report_emb[2], direct, atol=1e-5)
    assert len(result.sentences) == 4  # 1 + 1 + 2 sentences, empty report has none


def test_no_text_at_all(tiny) -> None:
    result = embed_reports(tiny, ["", ""], batch=8, timers=Timers())
    assert result.report_emb.shape == (0, 128) and len(result.sentences) == 0

"""The job encodes each distinct text once per chunk, with results identical to encoding them one by one."""

from __future__ import annotations

from pathlib import Path

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
        seen.extend(dict.fromkeys(texts))  # a batch's filler rows repeat one of its texts
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


def test_a_long_report_is_packed_into_windows_once_per_build(tmp_path: Path, tiny_model,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The first chunk's reports are planned while the workers start (to embed their texts early); the chunk's
    commit takes those plans instead of splitting and packing each report again (a 100k-line report took an hour
    per packing)."""
    import pandas as pd

    from cxr_explorer.index.runner import BuildConfig, run_build
    from cxr_explorer.retrieval.inputs import text_embedding
    from tests.helpers.corpora import png_bytes

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(png_bytes(1))
    long = " ".join(f"Finding number {k} is stable." for k in range(200))
    pd.DataFrame([{"image_path": "images/a.png", "report": long}]).to_csv(tmp_path / "c.csv", index=False)
    packed: list[int] = []
    real = text_embedding.pack_windows

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        packed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(text_embedding, "pack_windows", counting)
    run_build(BuildConfig(corpus=tmp_path / "c.csv", out=tmp_path / "b", model="tiny-random", workers=0, threads=1,
                          progress="none", precision="fp32"), model=tiny_model)
    assert len(packed) == 1

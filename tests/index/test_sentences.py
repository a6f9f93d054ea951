"""Each distinct normalised text reaches the text encoder once per build: across chunks, resumes and --append."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.index import runner
from cxr_explorer.index.text_cache import TextCache, token_batches
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.inputs.text_embedding import normalise
from tests.helpers.corpora import write_good_csv


@pytest.fixture
def calls(tiny_model, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Texts the tiny model's text encoder is asked to embed, counted by normalised key (once per call: a batch's
    filler rows repeat one of its texts)."""
    seen: Counter[str] = Counter()
    original = tiny_model.embed_texts

    def counting(texts, normalize=True):  # type: ignore[no-untyped-def]
        seen.update({normalise(t, True) for t in texts})
        return original(texts, normalize)

    monkeypatch.setattr(tiny_model, "embed_texts", counting)
    return seen


def test_normalise_merges_only_what_the_tokenizer_merges() -> None:
    assert normalise("No  pneumothorax.", True) == normalise("no pneumothorax", True) == "no pneumothorax"
    assert normalise("No pneumothorax.", False) != normalise("no pneumothorax.", False)
    assert normalise("No pneumothorax.", True) != normalise("No pneumothorax seen.", True)


def test_cache_encodes_each_key_once_and_matches_a_direct_encode(tiny_model, calls) -> None:
    cache = TextCache.for_model(tiny_model)
    texts = ["Heart size normal.", "heart size  normal", "No effusion.", "Heart size normal."]
    vecs, ok = cache.embed(tiny_model, texts, batch=2)
    again, _ = cache.embed(tiny_model, ["No effusion", "HEART SIZE NORMAL."], batch=2)
    assert ok.all() and calls == Counter({"heart size normal": 1, "no effusion": 1})
    assert (cache.stats.requested, cache.stats.encoded, cache.stats.saved) == (6, 2, 4)
    direct = tiny_model.embed_texts(["Heart size normal.", "No effusion."]).numpy()
    np.testing.assert_allclose(vecs[[0, 1, 3]], direct[[0, 0, 0]], atol=1e-5)
    np.testing.assert_allclose(again, direct[[1, 0]], atol=1e-5)


def test_token_batches_hold_one_length_each_within_row_and_token_limits() -> None:
    lengths = [300, 5, 12, 7, 300, 600, 6, 150, 5, 5, 5]
    batches = token_batches(lengths, max_rows=3, max_tokens=640)
    assert sorted(i for b, _ in batches for i in b) == list(range(len(lengths)))  # every text exactly once
    assert [([lengths[i] for i in b], rows) for b, rows in batches] == [
        ([5, 5, 5], 3), ([5], 3), ([6], 3), ([7], 3), ([12], 3), ([150], 3), ([300, 300], 2), ([600], 1)]
    assert token_batches([], 8) == []


def test_mixed_lengths_in_token_batches_embed_as_one_by_one(tiny_model) -> None:
    texts = ["No effusion.", "Heart size normal and lungs clear. " * 6, "Mild cardiomegaly.", "Left base opacity."]
    vecs, ok = TextCache.for_model(tiny_model).embed(tiny_model, texts, batch=2)
    one_by_one = np.concatenate([tiny_model.embed_texts([t]).numpy() for t in texts])
    assert ok.all()
    np.testing.assert_allclose(vecs, one_by_one, atol=1e-5)  # batching and padding change nothing


def test_a_text_gets_the_same_bits_whatever_is_encoded_with_it(tiny_model) -> None:
    words = ("cardiomegaly", "effusion", "atelectasis", "opacity", "edema", "consolidation", "pneumothorax", "nodule")
    length = tiny_model.tokenizer.count_tokens("Mild cardiomegaly.")
    same = [f"Mild {w}." for w in words if tiny_model.tokenizer.count_tokens(f"Mild {w}.") == length]
    assert len(same) >= 3, same
    alone, _ = TextCache.for_model(tiny_model).embed(tiny_model, [same[0]], batch=4)
    crowded, _ = TextCache.for_model(tiny_model).embed(tiny_model, [same[1], same[0], *same[2:], "No effusion."],
                                                       batch=4)
    assert alone[0].tobytes() == crowded[1].tobytes()  # fp32 kernels differ in the last bit between batch shapes


def test_refused_text_is_marked_not_cached(tiny_model) -> None:
    cache = TextCache.for_model(tiny_model)
    vecs, ok = cache.embed(tiny_model, ["No effusion.", "..."], batch=8)
    assert ok.tolist() == [True, False] and len(cache) == 1 and not vecs[1].any()


def test_build_encodes_each_sentence_once_across_chunks(tmp_path: Path, build, calls) -> None:
    corpus = write_good_csv(tmp_path, 6)  # "Case k. No effusion. Heart size normal."
    build(corpus, tmp_path / "b", chunk_size=2)
    assert max(calls.values()) == 1
    assert calls["no effusion"] == calls["heart size normal"] == 1
    record = Bundle.open(tmp_path / "b").manifest["build"]["text_encoder"]
    # 6 reports + 18 sentences asked for; distinct: 6 reports, 6 "Case k.", 2 shared sentences
    assert (record["texts"], record["encoded"], record["saved"]) == (24, 14, 10)
    bundle = Bundle.open(tmp_path / "b")
    shared = bundle.sentences["text"] == "No effusion."
    direct = calls_free_vector(bundle, "No effusion.")
    rows = np.flatnonzero(shared.to_numpy())
    np.testing.assert_allclose(bundle.vectors("sentences")[rows], np.repeat(direct[None], len(rows), 0), atol=1e-5)


def calls_free_vector(bundle: Bundle, text: str) -> np.ndarray:
    """The vector a single-text encode gives ``text`` (with the bundle's own tiny model)."""
    from cxr_explorer.retrieval.models import load_model

    return load_model(bundle.model_name, device="cpu").embed_texts([text]).numpy()[0]


def test_resume_and_append_reuse_embedded_sentences(tmp_path: Path, build, calls,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = write_good_csv(tmp_path, 6)
    original = runner._commit
    commits: list[object] = []

    def crash_after_first(*args, **kw):  # type: ignore[no-untyped-def]
        if commits:
            raise RuntimeError("simulated crash after the first chunk")
        commits.append(1)
        return original(*args, **kw)

    monkeypatch.setattr(runner, "_commit", crash_after_first)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(corpus, tmp_path / "b", chunk_size=2)
    monkeypatch.setattr(runner, "_commit", original)
    first_run = sum(calls.values())
    build(corpus, tmp_path / "b", chunk_size=2)  # the same command resumes
    assert calls["no effusion"] == calls["heart size normal"] == 1
    assert sum(calls.values()) - first_run > 0
    more = write_good_csv(tmp_path, 3, name="more.csv", start=6)
    before = sum(calls.values())
    build(more, tmp_path / "b", chunk_size=2, append=True)
    assert calls["no effusion"] == calls["heart size normal"] == 1  # seeded from the bundle's sentences
    assert sum(calls.values()) - before == 6  # 3 new reports + 3 new "Case k." sentences
    bundle = Bundle.open(tmp_path / "b")
    assert bundle.count == 9 and bundle.metadata["id"].is_unique

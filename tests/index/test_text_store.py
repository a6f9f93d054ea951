"""The build text cache's compact parts: digests in sorted arrays, vectors in a file read back by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxr_explorer.index.text_cache import TextCache
from cxr_explorer.index.text_cache_store import DigestIndex, VectorFile, digest
from cxr_explorer.retrieval.bundle.store import Part
from cxr_explorer.retrieval.inputs.text_embedding import normalise


def test_digest_is_16_bytes_and_tells_keys_apart() -> None:
    assert len(digest("no effusion")) == 16
    assert digest("no effusion") == digest("no effusion") != digest("no effusions")


def test_index_finds_rows_before_and_after_a_merge() -> None:
    index = DigestIndex(merge_every=3)
    keys = [digest(f"sentence {i}") for i in range(10)]
    for row, key in enumerate(keys[:7]):  # two merges, one key left in the recent dict
        index.add(key, row)
    assert len(index) == 7 and index.nbytes == 6 * 24
    got = index.lookup([keys[6], keys[0], keys[8], keys[3], keys[0]])
    assert got.tolist() == [6, 0, -1, 3, 0]
    assert index.lookup([]).tolist() == []


def test_index_keeps_keys_apart_whose_high_halves_are_equal() -> None:
    index = DigestIndex(merge_every=2)
    same_high = [b"\x01" * 8 + bytes([i]) * 8 for i in range(4)]
    for row, key in enumerate(same_high[:3]):
        index.add(key, 10 + row)
    index.add(b"\x00" * 16, 99)  # merged: three sorted keys share their high half
    assert index.lookup(same_high).tolist() == [10, 11, 12, -1]
    assert index.lookup([b"\x00" * 16]).tolist() == [99]


def test_vector_file_reads_rows_in_any_order_and_repeated(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    store = VectorFile(8, tmp_path / "v.f32")
    assert store.append(vectors[:20]) == 0 and store.append(vectors[20:]) == 20 and len(store) == 50
    rows = np.array([49, 3, 4, 5, 3, 0, 20, 21], np.int64)
    np.testing.assert_array_equal(store.read(rows), vectors[rows])
    assert store.read(np.zeros(0, np.int64)).shape == (0, 8)
    assert (tmp_path / "v.f32").stat().st_size == 50 * 8 * 4
    store.close()
    assert not (tmp_path / "v.f32").exists()


def _sentences_part(texts: list[str], vectors: np.ndarray) -> Part:
    """A part of one item whose sentence table is ``texts`` with ``vectors`` [S, D]."""
    dim = vectors.shape[1]
    empty = np.zeros((0, dim), np.float32)
    return Part(metadata=pd.DataFrame({"id": ["a"], "path": ["a.png"]}), image_emb=np.zeros((1, dim), np.float32),
                patches=np.zeros((1, 1, 1, dim), np.float16), thumbnails=[b""], report_emb=empty,
                report_rows=np.zeros(0, np.int64), sentence_emb=vectors,
                sentences=pd.DataFrame({"row": np.zeros(len(texts), np.int64), "text": texts}))


def test_cache_vectors_live_in_the_named_file_and_seed_in_blocks(tmp_path: Path, tiny_model,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import cxr_explorer.index.text_cache as sentences

    monkeypatch.setattr(sentences, "SEED_BLOCK", 3)
    texts = [f"Finding {i}." for i in range(7)] + ["finding 2", "Finding  3"]  # the last two repeat keys
    dim = tiny_model.spec.joint_dim
    vectors = np.random.default_rng(1).standard_normal((9, dim)).astype(np.float32)
    path = tmp_path / "cache.f32"
    with TextCache.for_model(tiny_model, path) as cache:
        cache.seed_parts([_sentences_part(texts, vectors)])
        assert len(cache) == 7 and cache.stats.seeded == 7
        assert path.stat().st_size == 7 * dim * 4  # each distinct key's vector once, on disk
        assert cache.key("FINDING 2") == digest(normalise("Finding 2.", True))
        got, ok = cache.embed(tiny_model, ["finding 6", "Finding 2!", "Finding 3", "Finding 6."], batch=4)
        assert ok.all() and cache.stats.encoded == 0  # all seeded: the model is not asked
        np.testing.assert_array_equal(got, vectors[[6, 2, 3, 6]])  # a repeated key keeps its first vector
        new, _ = cache.embed(tiny_model, ["No effusion."], batch=4)
        assert cache.stats.encoded == 1 and path.stat().st_size == 8 * dim * 4
        np.testing.assert_allclose(new[0], tiny_model.embed_texts(["No effusion."]).numpy()[0], atol=1e-5)
    assert not path.exists()

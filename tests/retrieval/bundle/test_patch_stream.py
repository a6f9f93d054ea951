"""Finalisation streams patches and vectors with plain reads: whole memory-mapped files, views of them and arrays
all agree, and the streamed files equal the concatenation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.retrieval.bundle.store import parts
from cxr_explorer.retrieval.bundle.store.parts import read_rows


def test_read_rows_of_files_views_and_arrays(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((2500, 2, 2, 4)).astype(np.float16)
    np.save(tmp_path / "p.npy", x)
    whole = np.load(tmp_path / "p.npy", mmap_mode="r")
    assert np.array_equal(read_rows(whole, 1024, 1024), x[1024:2048])
    assert np.array_equal(read_rows(whole, 2048, 1024), x[2048:])  # the short last block
    view = whole[5:]  # a view keeps the file's offset attribute: it must not be read from the file's start
    assert np.array_equal(read_rows(view, 0, 10), x[5:15])
    assert np.array_equal(read_rows(x, 7, 3), x[7:10])


def test_vectors_stream_into_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "_ROWS", 64)  # several blocks per part
    rng = np.random.default_rng(1)
    a, b = rng.random((300, 8)).astype(np.float32), rng.random((5, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    parts._write_rows(tmp_path / "out.npy", [mapped, np.zeros((0, 8), np.float32), b], 8, np.float32)
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (305, 8) and out.dtype == np.float32 and np.array_equal(out, np.concatenate([a, b]))
    parts._write_rows(tmp_path / "empty.npy", [], 8, np.float32)
    assert np.load(tmp_path / "empty.npy").shape == (0, 8)


def test_faiss_index_from_a_memory_map_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cxr_explorer.retrieval.bundle import writer

    x = np.random.default_rng(2).normal(size=(500, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    monkeypatch.setattr(writer, "ADD_BLOCK", 128)
    for kind in ("flat", "ivf"):
        mapped, _ = writer.build_index(np.load(tmp_path / "v.npy", mmap_mode="r"), kind, use_gpu=False)
        whole, _ = writer.build_index(x, kind, use_gpu=False)
        assert mapped.ntotal == whole.ntotal == 500
        d1, i1 = mapped.search(x[:20], 5)
        d2, i2 = whole.search(x[:20], 5)
        assert np.array_equal(i1, i2) and np.allclose(d1, d2)

"""Finalisation streams patches with plain reads: whole memory-mapped files, views of them and arrays all agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxr_explorer.retrieval.store.parts import read_rows


def testread_rowss_of_files_views_and_arrays(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((2500, 2, 2, 4)).astype(np.float16)
    np.save(tmp_path / "p.npy", x)
    whole = np.load(tmp_path / "p.npy", mmap_mode="r")
    assert np.array_equal(read_rows(whole, 1024, 1024), x[1024:2048])
    assert np.array_equal(read_rows(whole, 2048, 1024), x[2048:])  # the short last block
    view = whole[5:]  # a view keeps the file's offset attribute: it must not be read from the file's start
    assert np.array_equal(read_rows(view, 0, 10), x[5:15])
    assert np.array_equal(read_rows(x, 7, 3), x[7:10])

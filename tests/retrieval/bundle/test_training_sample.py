"""The IVF training sample is read block by block from the vector file, never through a memory map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.retrieval.bundle import writer
from cxr_explorer.retrieval.bundle.writer import training_sample


@pytest.mark.parametrize("size", [7, 64, 500])
def test_sample_is_the_seeded_rows_in_order_across_blocks(tmp_path: Path, size: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "ADD_BLOCK", 10)  # many blocks, some with no sampled row
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    rows = np.sort(np.random.default_rng(0).permutation(64)[:size])
    got = training_sample(mapped, size)
    assert got.dtype == np.float32 and got.flags.c_contiguous and not isinstance(got, np.memmap)
    np.testing.assert_array_equal(got, x[rows])
    np.testing.assert_array_equal(training_sample(x, size), got)  # in memory: the same rows


def test_sample_of_no_vectors_is_empty() -> None:
    assert training_sample(np.zeros((0, 4), np.float32), 10).shape == (0, 4)

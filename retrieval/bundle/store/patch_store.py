"""The compact patch store of a bundle version (``build --patch-store int8``): its codec and its files.

A bundle stores patch embeddings ``[N, h, w, D]`` as float16 (2 bytes per value) unless built with
``--patch-store int8``: then :func:`encode_int8` keeps each patch vector as ``round(127 * v / max|v|)`` int8 plus its
float16 scale ``max|v| / 127``, ``D + 2`` bytes per patch instead of ``2 D`` (130 vs 256 bytes at D = 128, 49%
smaller), read back transparently as float32 patches (:class:`Int8Patches`). Grounding maps from decoded patches stay
within 0.01 of the float16 maps (``benchmarks.growth`` measures the maximum difference on real-size embeddings).

Files: ``patches_int8.npy`` [N, h, w, D] int8 and ``patch_scales.npy`` [N, h, w] float16, both written block by
block with plain writes (no memory map) and memory-mapped read-only on reading (docs/bundle-format.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxr_explorer.retrieval.bundle.store.names import PATCH_SCALES, PATCHES_INT8

STORES = ("fp16", "int8")


def encode_int8(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[..., D]`` float patches -> (int8 codes ``[..., D]``, float16 scales ``[...]``); a zero vector keeps 0s."""
    x = np.asarray(patches, np.float32)
    peak = np.abs(x).max(axis=-1)
    scale = (peak / 127.0).astype(np.float16)
    safe = np.where(scale > 0, scale.astype(np.float32), 1.0)
    codes = np.clip(np.rint(x / safe[..., None]), -127, 127).astype(np.int8)
    return codes, scale


def decode_int8(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(int8 ``[..., D]``, float16 ``[...]``) -> float32 ``[..., D]`` patches (not re-normalised)."""
    return codes.astype(np.float32) * scales.astype(np.float32)[..., None]


class Int8Patches:
    """Read-only ``[N, h, w, D]`` float32 view of stored int8 codes and scales; indexing decodes only what it takes."""

    dtype = np.dtype(np.float32)
    itemsize = 4

    def __init__(self, codes: Any, scales: Any) -> None:
        """``codes`` [N, h, w, D] int8 and ``scales`` [N, h, w] float16, memory-mapped (or checked row views)."""
        self.codes, self.scales = codes, scales

    @classmethod
    def load(cls, folder: Path) -> Int8Patches:
        """The compact patches of ``folder``, memory-mapped read-only."""
        return cls(np.load(Path(folder) / PATCHES_INT8, mmap_mode="r"), np.load(Path(folder) / PATCH_SCALES,
                                                                                  mmap_mode="r"))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    @property
    def size(self) -> int:
        return int(self.codes.size)

    @property
    def ndim(self) -> int:
        return int(self.codes.ndim)

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, idx: Any) -> np.ndarray:
        return decode_int8(np.asarray(self.codes[idx]), np.asarray(self.scales[idx]))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


def is_int8(folder: Path) -> bool:
    """True when ``folder`` stores its patches compactly."""
    return (Path(folder) / PATCHES_INT8).is_file()


def _header(fh: Any, dtype: type, shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                              "fortran_order": False, "shape": shape})


def write_int8(folder: Path, blocks: Sequence[np.ndarray] | Any, shape: tuple[int, ...]) -> None:
    """Write ``blocks`` (iterable of [b, h, w, D] float patches, in order; ``shape`` the total) as codes + scales."""
    with open(Path(folder) / PATCHES_INT8, "wb") as codes, open(Path(folder) / PATCH_SCALES, "wb") as scales:
        _header(codes, np.int8, shape)
        _header(scales, np.float16, shape[:-1])
        for block in blocks:
            c, s = encode_int8(np.asarray(block, np.float32))
            codes.write(np.ascontiguousarray(c).tobytes())
            scales.write(np.ascontiguousarray(s).tobytes())

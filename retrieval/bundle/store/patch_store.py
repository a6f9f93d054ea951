"""The compact patch store of a bundle version (``build --patch-store int8``): int8 codes plus one float16 scale per
patch vector (:mod:`retrieval.bundle.store.patch_codec`), read back transparently as float32 patches.

Files: ``patches_int8.npy`` [N, h, w, D] int8 and ``patch_scales.npy`` [N, h, w] float16, both written block by
block with plain writes (no memory map) and memory-mapped read-only on reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cxr_explorer.retrieval.bundle.store.names import PATCH_SCALES, PATCHES_INT8
from cxr_explorer.retrieval.bundle.store.patch_codec import decode_int8, encode_int8

STORES = ("fp16", "int8")


class Int8Patches:
    """Read-only ``[N, h, w, D]`` float32 view of stored int8 codes and scales; indexing decodes only what it takes."""

    dtype = np.dtype(np.float32)
    itemsize = 4

    def __init__(self, folder: Path) -> None:
        self.codes = np.load(Path(folder) / PATCHES_INT8, mmap_mode="r")
        self.scales = np.load(Path(folder) / PATCH_SCALES, mmap_mode="r")

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

"""A model-free fingerprint of an image: the perceptual hash (pHash) of its stored thumbnail.

pHash (as in the ``imagehash`` package and cleanvision/fastdup's near-duplicate checks): the grayscale image resized to
``4 * SIDE`` square, its 2-D DCT-II, the ``SIDE x SIDE`` lowest frequencies, one bit per coefficient at or above their
median (so at least half the bits are set). A re-encoded, resized, brightness-shifted or slightly cropped copy keeps
nearly every bit; unrelated images differ in about half. Distances are Hamming distances between hashes (bits that
differ).
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
from PIL import Image
from scipy.fft import dctn

SIDE = 16
"""The low-frequency block kept: ``SIDE * SIDE`` = 256 bits."""
HASH_BYTES = SIDE * SIDE // 8
"""Bytes of one hash (a row of ``image_hashes.npy``, and the code width of a FAISS binary index)."""


def perceptual_hash(image: Image.Image) -> np.ndarray:
    """[HASH_BYTES] uint8: the pHash bits of ``image`` (any mode and size), packed most significant bit first."""
    gray = image.convert("L").resize((4 * SIDE, 4 * SIDE), Image.Resampling.LANCZOS)
    coeffs = dctn(np.asarray(gray, dtype=np.float64), type=2, norm="ortho")[:SIDE, :SIDE]
    return np.packbits(coeffs.ravel() >= np.median(coeffs))


def hashes_of_jpegs(thumbnails: Iterable[bytes]) -> np.ndarray:
    """[N, HASH_BYTES] uint8 hashes of N encoded images (the bundle's thumbnails). An undecodable one gets all-zero
    bits, which no image hashes to (at least half the bits of a hash are set): :func:`has_hash` is False."""
    rows = []
    for data in thumbnails:
        try:
            with Image.open(io.BytesIO(data)) as img:
                rows.append(perceptual_hash(img))
        except (OSError, ValueError):
            rows.append(np.zeros(HASH_BYTES, dtype=np.uint8))
    return np.stack(rows) if rows else np.zeros((0, HASH_BYTES), dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between hashes [..., HASH_BYTES] and [..., HASH_BYTES] (broadcast) -> [...] int."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1).astype(np.int64)


def has_hash(hashes: np.ndarray) -> np.ndarray:
    """[N] bool: rows of [N, HASH_BYTES] that hold a hash (not the all-zero "no image" row)."""
    return np.count_nonzero(hashes, axis=-1) > 0

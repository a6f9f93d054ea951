"""The int8 patch codec: round trip error bounded by half a step, maps within 0.01 of float16 maps."""

from __future__ import annotations

import numpy as np
import torch

from cxr_explorer.retrieval.bundle.store.patch_store import decode_int8, encode_int8
from cxr_explorer.retrieval.grounding.maps import grid_maps


def _unit(shape: tuple[int, ...], seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_round_trip_error_is_half_a_step() -> None:
    p = _unit((3, 15, 15, 128), 0)
    codes, scales = encode_int8(p)
    assert codes.dtype == np.int8 and scales.shape == (3, 15, 15)
    err = np.abs(decode_int8(codes, scales) - p)
    assert (err <= scales.astype(np.float32)[..., None] * 0.5 + 1e-3 * np.abs(p).max()).all()
    zero = np.zeros((1, 2, 2, 128), np.float32)
    assert not decode_int8(*encode_int8(zero)).any()


def test_grounding_maps_stay_within_0_01_of_float16() -> None:
    p16 = _unit((8, 15, 15, 128), 1).astype(np.float16)
    text = torch.from_numpy(_unit((128,), 2))
    ref = grid_maps(torch.from_numpy(p16.astype(np.float32)), text)
    got = grid_maps(torch.from_numpy(decode_int8(*encode_int8(p16))), text)
    assert float(np.abs(got - ref).max()) < 0.01

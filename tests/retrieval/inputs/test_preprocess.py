"""Tests for retrieval.inputs.preprocess (torchvision Resize + CenterCrop + ToTensor + ExpandChannels, without
torchvision)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cxr_explorer.retrieval.inputs.preprocess import Preprocessing, preprocess_batch

RNG = np.random.default_rng(7)


def gray(width: int, height: int) -> Image.Image:
    return Image.fromarray(RNG.integers(0, 256, (height, width), dtype=np.uint8))


def test_shape_range_and_channels() -> None:
    out = Preprocessing(512, 480)(gray(600, 500))
    assert out.shape == (3, 480, 480) and out.dtype == torch.float32
    assert 0.0 <= out.min().item() and out.max().item() <= 1.0
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_resized_size_truncates_long_side() -> None:
    pp = Preprocessing(512, 480)
    assert pp.resized_size(600, 500) == (614, 512)  # int(512 * 600 / 500) = int(614.4)
    assert pp.resized_size(500, 600) == (512, 614)
    assert pp.resized_size(512, 512) == (512, 512)


def test_resize_matches_pil_bilinear_then_center_crop() -> None:
    img = gray(600, 500)
    resized = np.asarray(img.resize((614, 512), Image.Resampling.BILINEAR))
    expected = torch.from_numpy(resized[16:496, 67:547].astype(np.float32) / np.float32(255))
    out = Preprocessing(512, 480)(img)
    assert torch.equal(out[0], expected)


def test_tiny_hand_computed_crop() -> None:
    # 10x8 at resize 8: shorter side already 8, so no resize; crop 6: top = round(1.0) = 1, left = round(2.0) = 2
    arr = np.arange(80, dtype=np.uint8).reshape(8, 10)
    out = Preprocessing(8, 6)(Image.fromarray(arr))
    assert torch.equal(out[0], torch.from_numpy(arr[1:7, 2:8]).float().div(255))
    assert Preprocessing(8, 6).crop_box(10, 8) == (2, 1, 8, 7)


def test_crop_offsets_use_python_round_half_even() -> None:
    # 9x7 at resize 7, crop 4: left = round(2.5) = 2, top = round(1.5) = 2
    arr = np.arange(63, dtype=np.uint8).reshape(7, 9)
    out = Preprocessing(7, 4)(Image.fromarray(arr))
    assert torch.equal(out[0], torch.from_numpy(arr[2:6, 2:6]).float().div(255))
    assert Preprocessing(7, 4).crop_box(9, 7) == (2, 2, 6, 6)


def test_crop_larger_than_image_pads_with_zero() -> None:
    # 4x3 at resize 3 (no resize), crop 6: pad left 1, right 1, top 1, bottom 2
    arr = np.arange(1, 13, dtype=np.uint8).reshape(3, 4)
    out = Preprocessing(3, 6)(Image.fromarray(arr))[0]
    expected = np.zeros((6, 6), np.float32)
    expected[1:4, 1:5] = arr / np.float32(255)
    assert torch.equal(out, torch.from_numpy(expected))
    assert Preprocessing(3, 6).crop_box(4, 3) == (-1, -1, 5, 5)


def test_crop_box_in_original_coordinates() -> None:
    pp = Preprocessing(512, 480)
    # resized 614x512, window (67, 16, 547, 496) scaled by 600/614 and 500/512
    assert pp.crop_box(600, 500) == (65, 16, 535, 484)
    assert pp.crop_box(500, 600) == (16, 65, 484, 535)
    assert Preprocessing(512, 512).crop_box(640, 640) == (0, 0, 640, 640)


def test_dict_round_trip_and_validation() -> None:
    pp = Preprocessing(512, 480)
    assert Preprocessing.from_dict(json.loads(json.dumps(pp.to_dict()))) == pp
    with pytest.raises(ValueError):
        Preprocessing.from_dict({"resize": 512, "crop": 480, "mean": 0.5})
    with pytest.raises(ValueError):
        Preprocessing(0, 480)
    with pytest.raises(ValueError):
        Preprocessing(512, 480.0)  # type: ignore[arg-type]


def test_rejects_non_gray_image() -> None:
    with pytest.raises(ValueError, match="mode 'L'"):
        Preprocessing(8, 6)(Image.new("RGB", (10, 8)))


def test_preprocess_batch() -> None:
    pp = Preprocessing(16, 12)
    images = [gray(20, 18), gray(17, 30), gray(16, 16)]
    batch = preprocess_batch(images, pp)
    assert batch.shape == (3, 3, 12, 12) and batch.dtype == torch.float32
    for i, img in enumerate(images):
        assert torch.equal(batch[i], pp(img))
    assert preprocess_batch([], pp).shape == (0, 3, 12, 12)

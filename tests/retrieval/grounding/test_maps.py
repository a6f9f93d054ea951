"""Unit tests for :mod:`retrieval.grounding.maps` (hand-checkable cases plus an optional check against hi-ml 0.2.2)."""

from __future__ import annotations

import importlib.util
import io
import sys
import types
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from cxr_explorer.retrieval.grounding import maps as grounding
from tests.helpers.paths import REPO


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random L2-normalised embeddings with the last axis as features: ``shape``."""
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=gen), dim=-1)


def test_constant_patch_grid_gives_constant_map() -> None:
    direction = _unit(16)
    patches = direction.expand(15, 15, 16).clone()
    m = grounding.similarity_map(patches, direction, width=300, height=300, resize_size=None, crop_size=None)
    assert m.shape == (300, 300) and m.dtype == np.float32
    np.testing.assert_allclose(m, 1.0, atol=1e-6)


def test_nan_border_for_600x500_image_at_512_480() -> None:
    m = grounding.similarity_map(_unit(15, 15, 8), _unit(1, 8, seed=1), width=600, height=500, resize_size=512,
                                 crop_size=480)
    side = int(480 * 500 / 512)  # 468 original pixels covered by the 480 crop of the 512 resize
    assert m.shape == (500, 600) and side == 468
    assert np.isnan(m).mean() == pytest.approx(1 - side * side / (600 * 500))
    assert np.isnan(m).mean() == pytest.approx(0.27, abs=0.005)
    # margins: floor/ceil of (600-468)/2 = 66 columns, (500-468)/2 = 16 rows
    assert np.isnan(m[:, :66]).all() and np.isnan(m[:, 66 + side :]).all()
    assert np.isnan(m[:16]).all() and np.isnan(m[16 + side :]).all()
    assert np.isfinite(m[16 : 16 + side, 66 : 66 + side]).all()


def test_odd_margin_puts_extra_nan_on_the_right() -> None:
    m = grounding.to_image_size(np.zeros((2, 2), np.float32), width=7, height=4, resize_size=None, crop_size=4)
    assert np.isnan(m[:, :1]).all() and np.isnan(m[:, 5:]).all() and np.isfinite(m[:, 1:5]).all()


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
def test_interpolation_modes_keep_shape_and_crop(interpolation: str) -> None:
    grid = grounding.grid_maps(_unit(1, 15, 15, 8), _unit(8, seed=2))[0]
    m = grounding.to_image_size(grid, 640, 480, 512, 480, interpolation)
    assert m.shape == (480, 640)
    assert np.isfinite(m).sum() == int(480 * 480 / 512) ** 2
    full = grounding.to_image_size(torch.from_numpy(grid), 64, 48, None, None, interpolation)
    assert full.shape == (48, 64) and np.isfinite(full).all()


def test_nearest_upsampling_repeats_grid_cells() -> None:
    grid = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    m = grounding.to_image_size(grid, width=4, height=4, resize_size=None, crop_size=None)
    np.testing.assert_array_equal(m, np.kron(grid, np.ones((2, 2), np.float32)))


def test_text_as_vector_or_row_is_the_same() -> None:
    patches, text = _unit(4, 5, 8), _unit(8, seed=3)
    np.testing.assert_array_equal(grounding.patch_similarity(patches, text),
                                  grounding.patch_similarity(patches, text[None]))
    with pytest.raises(ValueError):
        grounding.patch_similarity(patches, _unit(2, 8))


def test_smooth_grid_matches_scipy_and_batches_exactly() -> None:
    stack = np.random.default_rng(0).normal(size=(6, 15, 15)).astype(np.float32)
    single = grounding.smooth_grid(stack[0])
    np.testing.assert_array_equal(single, ndimage.gaussian_filter(stack[0], sigma=(1.5, 1.5), order=0))
    assert single.dtype == np.float32
    np.testing.assert_array_equal(grounding.smooth_grid(stack), np.stack([grounding.smooth_grid(m) for m in stack]))


def test_grid_maps_equal_per_image_maps() -> None:
    patches, text = _unit(5, 15, 15, 16), _unit(16, seed=4)
    batched = grounding.grid_maps(patches, text)
    per_image = np.stack([grounding.smooth_grid(grounding.patch_similarity(p, text).numpy()) for p in patches])
    assert batched.shape == (5, 15, 15)
    np.testing.assert_allclose(batched, per_image, atol=1e-6, rtol=0)  # only matmul rounding may differ


def test_global_prompt_score_averages_unnormalised_prompts() -> None:
    image = torch.tensor([1.0, 0.0])
    prompts = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # mean (1.5, 2) -> normalised (0.6, 0.8)
    assert grounding.global_prompt_score(image, prompts) == pytest.approx(0.6)
    # averaging normalised prompts instead would give 1/sqrt(2); make sure that is not what happens
    assert grounding.global_prompt_score(image, prompts) != pytest.approx(2**-0.5)
    score = grounding.zero_shot_margin(image, prompts, torch.tensor([[0.0, 5.0]]))
    assert (score.positive, score.negative, score.margin) == pytest.approx((0.6, 0.0, 0.6))


def test_default_pneumonia_prompts() -> None:
    assert len(grounding.POSITIVE_PNEUMONIA_PROMPTS) == len(grounding.NEGATIVE_PNEUMONIA_PROMPTS) == 4
    assert "No signs of pneumonia" in grounding.NEGATIVE_PNEUMONIA_PROMPTS


def test_overlay_colours_and_transparent_nan() -> None:
    m = np.array([[np.nan, -1.0, 0.0], [1.0, 5.0, -5.0]], dtype=np.float32)
    rgba = grounding.overlay_rgba(m)
    assert rgba.shape == (2, 3, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[0, 0], [0, 0, 0, 0])
    # expected bytes are matplotlib 3.11 ``colormaps["RdBu_r"](Normalize(-1, 1)(x), alpha=0.5, bytes=True)``
    np.testing.assert_array_equal(rgba[0, 1], [5, 48, 97, 127])
    np.testing.assert_array_equal(rgba[0, 2], [247, 246, 246, 127])
    np.testing.assert_array_equal(rgba[1, 0], [103, 0, 31, 127])
    np.testing.assert_array_equal(rgba[1, 1], rgba[1, 0])  # over-range clips to the top colour
    np.testing.assert_array_equal(rgba[1, 2], rgba[0, 1])
    gray = grounding.overlay_rgba(np.array([[0.0, 1.0]]), vmin=0.0, vmax=1.0, cmap="gray", alpha=1.0)
    np.testing.assert_array_equal(gray[0, :, :3], [[0, 0, 0], [255, 255, 255]])
    assert grounding.overlay_rgba(np.zeros((1, 1)), cmap="viridis").shape == (1, 1, 4)
    with pytest.raises(ValueError):
        grounding.overlay_rgba(np.zeros((1, 1)), cmap="jet")


def test_png_round_trip() -> None:
    rgba = grounding.overlay_rgba(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    data = grounding.to_png_bytes(rgba)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), rgba)


def _reference_engine(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Load hi-ml 0.2.2's ``vlp/inference_engine.py`` from ``.venv-ref`` with its model imports stubbed out."""
    found = sorted(REPO.glob(".venv-ref/lib/python*/site-packages/health_multimodal/vlp/inference_engine.py"))
    if not found:
        pytest.skip("reference hi-ml-multimodal install (.venv-ref) not present")
    stubs = {
        "health_multimodal": types.SimpleNamespace(),
        "health_multimodal.image": types.SimpleNamespace(ImageInferenceEngine=object),
        "health_multimodal.text": types.SimpleNamespace(TextInferenceEngine=object),
    }
    for name, stub in stubs.items():
        monkeypatch.setitem(sys.modules, name, stub)
    spec = importlib.util.spec_from_file_location("_himl_ref_vlp_engine", found[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ImageTextInferenceEngine


@pytest.mark.parametrize(
    ("width", "height", "resize_size", "crop_size", "interpolation"),
    [(600, 500, 512, 480, "nearest"), (2544, 3056, 512, 480, "bilinear"), (37, 53, 512, 480, "bicubic"),
     (640, 480, None, 448, "nearest"), (300, 200, None, None, "bilinear")],
)  # fmt: skip
def test_matches_reference_implementation(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int, resize_size: int | None, crop_size: int | None,
    interpolation: str,
) -> None:  # fmt: skip
    engine = _reference_engine(monkeypatch)
    patches, text = _unit(15, 15, 128, seed=5), _unit(1, 128, seed=6)
    grid = engine._get_similarity_map_from_embeddings(patches, text)
    expected = engine.convert_similarity_to_image_size(
        grid, width=width, height=height, resize_size=resize_size, crop_size=crop_size, interpolation=interpolation
    )
    actual = grounding.similarity_map(patches, text, width, height, resize_size, crop_size, interpolation)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=0, equal_nan=True)


_MAPS = REPO / "tests" / "reference" / "grounding_maps.npz"
_MAP_CASES = [tuple(c) for c in __import__("json").loads(
    (REPO / "tests" / "reference" / "fixture_meta.json").read_text())["grounding_cases"]]


@pytest.mark.parametrize(("width", "height", "resize_size", "crop_size", "interpolation"), _MAP_CASES)
def test_matches_stored_reference_maps(
    width: int, height: int, resize_size: int | None, crop_size: int | None, interpolation: str,
) -> None:  # fmt: skip
    """hi-ml 0.2.2's maps, stored by tests/reference/generate_fixture.py (bicubic, crop-only, no-crop, padded):
    runs on every checkout, without .venv-ref."""
    with np.load(_MAPS) as ref:
        expected = ref[f"map/{width}x{height}/{resize_size}/{crop_size}/{interpolation}"]
        patches, text, grid = torch.from_numpy(ref["patches"]), torch.from_numpy(ref["text"]), ref["grid"]
    np.testing.assert_allclose(grounding.smooth_grid(grounding.patch_similarity(patches, text).numpy()), grid,
                               atol=1e-6, rtol=0)
    actual = grounding.similarity_map(patches, text, width, height, resize_size, crop_size, interpolation)
    assert actual.shape == expected.shape == (height, width) and actual.dtype == expected.dtype
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=0, equal_nan=True)

"""Phrase-grounding maths as small pure functions (numpy / torch / scipy / PIL only, no model code).

The pipeline reproduces ``ImageTextInferenceEngine.get_similarity_map_from_raw_data`` of hi-ml-multimodal 0.2.2
(``health_multimodal/vlp/inference_engine.py``) once the embeddings are known:

1. :func:`patch_similarity`: ``patches.view(-1, D) @ text.T`` reshaped to the patch grid ``[h, w]``;
2. :func:`smooth_grid`: ``scipy.ndimage.gaussian_filter(sim, sigma=(1.5, 1.5), order=0)`` (mode ``reflect``,
   truncate 4.0), on float32 like the reference;
3. :func:`to_image_size`: upsample to the centre crop of the original image and pad the margins with NaN.

:func:`similarity_map` is the composition; :func:`grid_maps` is the batched grid-level variant used to overlay heatmaps
on many search results at once. :func:`global_prompt_score` mirrors ``get_similarity_score_from_raw_data`` (mean of
*unnormalised* prompt embeddings, then L2 normalisation, then a dot product). :func:`overlay_rgba` colours a map like
matplotlib's ``cmap(Normalize(vmin, vmax)(x), alpha=alpha, bytes=True)`` without needing matplotlib.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from math import ceil, floor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from cxr_explorer.retrieval.inputs.text_embedding import mean_renormalised

DEFAULT_SIGMA = 1.5
"""Gaussian smoothing of the patch grid used by the reference (``sigma=(1.5, 1.5)``)."""

POSITIVE_PNEUMONIA_PROMPTS: tuple[str, ...] = (
    "Findings consistent with pneumonia",
    "Findings suggesting pneumonia",
    "This opacity can represent pneumonia",
    "Findings are most compatible with pneumonia",
)
NEGATIVE_PNEUMONIA_PROMPTS: tuple[str, ...] = (
    "There is no pneumonia",
    "No evidence of pneumonia",
    "No evidence of acute pneumonia",
    "No signs of pneumonia",
)

_ALIGN_CORNERS_MODES = ("linear", "bilinear", "bicubic", "trilinear")
_LUT_SIZE = 256

# ColorBrewer RdBu (matplotlib ``_RdBu_data``), 11 anchors from dark red to dark blue; RdBu_r is its reverse.
_RDBU = (
    (0.403921568627451, 0.0, 0.12156862745098039),
    (0.6980392156862745, 0.09411764705882353, 0.16862745098039217),
    (0.8392156862745098, 0.3764705882352941, 0.30196078431372547),
    (0.9568627450980393, 0.6470588235294118, 0.5098039215686274),
    (0.9921568627450981, 0.8588235294117647, 0.7803921568627451),
    (0.9686274509803922, 0.9686274509803922, 0.9686274509803922),
    (0.8196078431372549, 0.8980392156862745, 0.9411764705882353),
    (0.5725490196078431, 0.7725490196078432, 0.8705882352941177),
    (0.2627450980392157, 0.5764705882352941, 0.7647058823529411),
    (0.12941176470588237, 0.4, 0.6745098039215687),
    (0.0196078431372549, 0.18823529411764706, 0.3803921568627451),
)
# 17 samples of matplotlib's viridis at k/16 (an approximation within 6/255 per channel, not its 256-entry table).
_VIRIDIS = (
    (0.267004, 0.004874, 0.329415), (0.282327, 0.094955, 0.417331), (0.278826, 0.17549, 0.483397),
    (0.258965, 0.251537, 0.524736), (0.229739, 0.322361, 0.545706), (0.19943, 0.387607, 0.554642),
    (0.172719, 0.448791, 0.557885), (0.149039, 0.508051, 0.55725), (0.127568, 0.566949, 0.550556),
    (0.120638, 0.625828, 0.533488), (0.157851, 0.683765, 0.501686), (0.24607, 0.73891, 0.452024),
    (0.369214, 0.788888, 0.382914), (0.515992, 0.831158, 0.294279), (0.678489, 0.863742, 0.189503),
    (0.845561, 0.887322, 0.099702), (0.993248, 0.906157, 0.143936),
)  # fmt: skip
_GRAY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
_COLORMAPS: dict[str, tuple[tuple[float, float, float], ...]] = {"RdBu": _RDBU, "viridis": _VIRIDIS, "gray": _GRAY}


@dataclass(frozen=True)
class ZeroShotScore:
    """Cosine similarities of one image to a positive and a negative prompt set; ``margin = positive - negative``."""

    positive: float
    negative: float
    margin: float


def _text_row(text: torch.Tensor, feature_size: int) -> torch.Tensor:
    """Return the text embedding as a ``[1, D]`` row, accepting ``[D]`` or ``[1, D]``."""
    if text.dim() == 1:
        text = text.unsqueeze(0)
    if text.dim() != 2 or text.shape[0] != 1 or text.shape[1] != feature_size:
        raise ValueError(f"text must have shape [D] or [1, D] with D={feature_size}, got {tuple(text.shape)}")
    return text


COSINE_BOUND = 1.02
"""The largest |cosine| a stored patch may give with a unit text vector: 1 plus the rounding of float16 and int8
patch storage (both well under 0.02). Beyond it the stored patch is damaged, and the map is refused, not drawn."""


def patch_similarity(patches: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Dot products of L2-normalised patch embeddings with one L2-normalised text embedding.

    :param patches: ``[h, w, D]`` or ``[N, h, w, D]`` patch embeddings (normalised by the caller).
    :param text: ``[D]`` or ``[1, D]`` text embedding (normalised by the caller).
    :return: float32 CPU tensor ``[h, w]`` or ``[N, h, w]`` (one matmul for the whole batch).
    """
    if patches.dim() not in (3, 4):
        raise ValueError(f"patches must have shape [h, w, D] or [N, h, w, D], got {tuple(patches.shape)}")
    feature_size = patches.shape[-1]
    row = _text_row(text, feature_size)
    with torch.no_grad():
        sim = patches.reshape(-1, feature_size) @ row.t()
    return sim.reshape(patches.shape[:-1]).detach().cpu().float()


def smooth_grid(sim: np.ndarray, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """Gaussian-smooth one ``[h, w]`` map or each map of an ``[N, h, w]`` stack on its own two axes.

    Uses ``scipy.ndimage.gaussian_filter`` with ``order=0`` and scipy's defaults (mode ``reflect``, truncate 4.0); a
    stack is filtered with ``sigma=(0, s, s)`` so maps never mix. The output keeps the input float dtype (the reference
    filters float32 arrays).
    """
    arr = np.asarray(sim)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    if arr.ndim == 2:
        return ndimage.gaussian_filter(arr, sigma=(sigma, sigma), order=0)
    if arr.ndim == 3:
        return ndimage.gaussian_filter(arr, sigma=(0.0, sigma, sigma), order=0)
    raise ValueError(f"sim must have shape [h, w] or [N, h, w], got {arr.shape}")


def to_image_size(
    sim_grid: np.ndarray | torch.Tensor,
    width: int,
    height: int,
    resize_size: int | None,
    crop_size: int | None,
    interpolation: str = "nearest",
) -> np.ndarray:
    """Map a ``[h, w]`` grid back onto the original ``[height, width]`` image, as the reference does.

    With a crop, the grid is upsampled to the crop's footprint in original pixels,
    ``int(crop_size * min(height, width) / resize_size)`` square, and centred with NaN margins (``floor`` of half the
    margin on the left/top, ``ceil`` on the right/bottom). Without a crop it is upsampled to the whole image.

    :return: ``[height, width]`` array (float32 for float32 input), NaN outside the centre crop.
    """
    if isinstance(sim_grid, np.ndarray):
        grid = torch.as_tensor(np.ascontiguousarray(sim_grid))
    else:
        grid = sim_grid.detach().cpu()
    if grid.dim() != 2:
        raise ValueError(f"sim_grid must have shape [h, w], got {tuple(grid.shape)}")
    reshaped = grid.reshape(1, 1, grid.shape[0], grid.shape[1])
    align_corners = False if interpolation in _ALIGN_CORNERS_MODES else None
    if crop_size is None:
        resized = F.interpolate(reshaped, size=(height, width), mode=interpolation, align_corners=align_corners)
        return resized[0, 0].numpy()
    side = int(crop_size * min(height, width) / resize_size) if resize_size is not None else crop_size
    resized = F.interpolate(reshaped, size=(side, side), mode=interpolation, align_corners=align_corners)
    margin_w, margin_h = width - side, height - side
    pads = (floor(margin_w / 2), ceil(margin_w / 2), floor(margin_h / 2), ceil(margin_h / 2))
    return F.pad(resized[0, 0], pads, value=float("nan")).numpy()


def similarity_map(
    patches: torch.Tensor,
    text: torch.Tensor,
    width: int,
    height: int,
    resize_size: int | None,
    crop_size: int | None,
    interpolation: str = "nearest",
    sigma: float = DEFAULT_SIGMA,
) -> np.ndarray:
    """Full phrase-grounding map from embeddings: similarity, smoothing, then back to image size.

    :param patches: ``[h, w, D]`` L2-normalised patch embeddings of one image.
    :param text: ``[1, D]`` or ``[D]`` L2-normalised phrase embedding.
    :return: ``[height, width]`` float32 map, NaN outside the model's centre crop.
    """
    if patches.dim() != 3:
        raise ValueError(f"patches must have shape [h, w, D], got {tuple(patches.shape)}")
    grid = smooth_grid(patch_similarity(patches, text).numpy(), sigma=sigma)
    return to_image_size(grid, width, height, resize_size, crop_size, interpolation)


def grid_maps(patches: torch.Tensor, text: torch.Tensor, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """Smoothed grid-level maps for many images at once (one matmul and one batched filter).

    :param patches: ``[N, h, w, D]`` L2-normalised patch embeddings.
    :param text: ``[D]`` or ``[1, D]`` L2-normalised phrase embedding.
    :return: ``[N, h, w]`` float32 maps, each equal to the per-image reference map before resizing.
    """
    if patches.dim() != 4:
        raise ValueError(f"patches must have shape [N, h, w, D], got {tuple(patches.shape)}")
    return smooth_grid(patch_similarity(patches, text).numpy(), sigma=sigma)


def global_prompt_score(image_global: torch.Tensor, prompt_embeddings_unnormalised: torch.Tensor) -> float:
    """Cosine similarity of an L2-normalised ``[D]`` global image embedding with a prompt set ``[P, D]`` (or one
    ``[D]``).

    Mirrors ``get_similarity_score_from_raw_data``: the prompt embeddings are averaged *before* normalisation
    (:func:`retrieval.inputs.text_embedding.mean_renormalised`).
    """
    prompts = prompt_embeddings_unnormalised.detach().cpu().float()
    text = mean_renormalised(prompts.unsqueeze(0).numpy() if prompts.dim() == 1 else prompts.numpy())
    return float(image_global.detach().cpu().float().reshape(-1).numpy() @ text)


def zero_shot_margin(
    image_global: torch.Tensor, positive_unnormalised: torch.Tensor, negative_unnormalised: torch.Tensor
) -> ZeroShotScore:
    """Scores of one ``[D]`` image embedding against positive ``[P, D]`` and negative ``[Q, D]`` prompt sets."""
    positive = global_prompt_score(image_global, positive_unnormalised)
    negative = global_prompt_score(image_global, negative_unnormalised)
    return ZeroShotScore(positive=positive, negative=negative, margin=positive - negative)


def _segment_lut(anchors: np.ndarray, n: int, reverse: bool) -> np.ndarray:
    """Linear interpolation of evenly spaced anchors ``[K, 3]`` to ``[n, 3]``, as matplotlib builds its LUT.

    A reversed map reverses the anchors and, like matplotlib's ``reversed()``, places them at ``1 - x``.
    """
    positions = np.linspace(0.0, 1.0, len(anchors))
    if reverse:
        anchors, positions = anchors[::-1], 1.0 - positions[::-1]
    x = positions * (n - 1)
    xind = (n - 1) * np.linspace(0.0, 1.0, n)
    ind = np.searchsorted(x, xind)[1:-1]
    distance = ((xind[1:-1] - x[ind - 1]) / (x[ind] - x[ind - 1]))[:, None]
    inner = distance * (anchors[ind] - anchors[ind - 1]) + anchors[ind - 1]
    return np.clip(np.concatenate([anchors[:1], inner, anchors[-1:]]), 0.0, 1.0)


@lru_cache(maxsize=16)
def colormap_lut(name: str) -> np.ndarray:
    """``[256, 3]`` uint8 lookup table for ``RdBu``, ``viridis``, ``gray`` or their ``_r`` reverses."""
    base, reverse = (name[:-2], True) if name.endswith("_r") else (name, False)
    if base not in _COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose from {sorted(_COLORMAPS)} (optionally with '_r')")
    anchors = np.asarray(_COLORMAPS[base], dtype=np.float64)
    lut = (_segment_lut(anchors, _LUT_SIZE, reverse) * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def overlay_rgba(
    map_hw: np.ndarray, vmin: float = -1.0, vmax: float = 1.0, cmap: str = "RdBu_r", alpha: float = 0.5
) -> np.ndarray:
    """Colour a ``[H, W]`` map into ``[H, W, 4]`` uint8 RGBA; NaN pixels are fully transparent.

    Values are normalised with ``(x - vmin) / (vmax - vmin)`` and binned into 256 colours; values outside
    ``[vmin, vmax]`` take the end colours (matplotlib's default under/over behaviour). ``alpha`` applies to every
    non-NaN pixel (``int(alpha * 255)``, as matplotlib's ``bytes=True``).
    """
    values = np.asarray(map_hw)
    if values.ndim != 2:
        raise ValueError(f"map_hw must have shape [H, W], got {values.shape}")
    if not vmax > vmin:
        raise ValueError(f"vmax must exceed vmin, got vmin={vmin}, vmax={vmax}")
    scaled = (values.astype(np.result_type(values.dtype, np.float32)) - vmin) / (vmax - vmin) * _LUT_SIZE
    bad = np.isnan(scaled)
    index = np.clip(np.nan_to_num(scaled, nan=0.0), 0, _LUT_SIZE - 1).astype(np.intp)
    rgba = np.empty(values.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = colormap_lut(cmap)[index]
    rgba[..., 3] = np.uint8(float(np.clip(alpha, 0.0, 1.0)) * 255)
    rgba[bad] = 0
    return rgba


def to_png_bytes(rgba: np.ndarray) -> bytes:
    """Encode an ``[H, W, 4]`` (or ``[H, W, 3]``) uint8 array as PNG bytes."""
    arr = np.ascontiguousarray(rgba)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected a uint8 [H, W, 3|4] array, got {arr.dtype} {arr.shape}")
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()

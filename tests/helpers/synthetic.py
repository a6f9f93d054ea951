"""Synthetic test material shared by the engine and app tests: the tiny model, drawn images, planted vectors."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from cxr_explorer.retrieval.models import VLModel, load_model


@lru_cache(maxsize=1)
def tiny_model() -> VLModel:
    """The synthetic ``tiny-random`` model, loaded once per process."""
    return load_model("tiny-random", device="cpu")


def draw_image(seed: int, width: int, height: int) -> Image.Image:
    """A grayscale picture of a few bright ellipses on a dark background."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (width, height), int(rng.integers(0, 60)))
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        d.ellipse([x0, y0, x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2))],
                  fill=int(rng.integers(120, 255)))
    return img


def planted_vectors(n: int, dim: int, dup_of: Mapping[int, int], clusters: int = 1) -> np.ndarray:
    """[n, dim] seeded unit vectors (in ``clusters`` groups by row % clusters); each ``dup_of`` row is a near-copy
    (cosine ~0.9999) of its original. The tiny model maps all images to almost one vector, so tests plant these."""
    rng = np.random.default_rng(7)
    if clusters > 1:
        centres = rng.standard_normal((clusters, dim)).astype(np.float32)
        vecs = centres[np.arange(n) % clusters] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    else:
        vecs = rng.standard_normal((n, dim)).astype(np.float32)
    for dup, orig in dup_of.items():
        vecs[dup] = vecs[orig] + 0.01 * rng.standard_normal(dim).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

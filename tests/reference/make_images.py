"""Deterministic synthetic chest-radiograph-like test images for the reference fixture (numpy + Pillow only).

Both virtual environments import this file (the reference generator by path), so it must not import the project.
The images are committed under ``tests/reference/images/``; ``generate_fixture.py`` rewrites them and records their
sha256, and the equivalence test checks those hashes, so an edit here that changes a pixel is noticed.

Each image is a smooth "thorax" (bright mediastinum and diaphragm, two darker lung fields, rib-like bands) whose
layout depends on a seed, so different images give clearly different encoder outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class SyntheticImage:
    """One generated file: ``name`` (extension = format), size ``width`` x ``height``, ``mode`` ("L", "RGB" or
    "I;16" for 16-bit grayscale holding ``bits`` significant bits), layout ``seed``."""

    name: str
    width: int
    height: int
    mode: str
    seed: int
    bits: int = 8


# Order matters: the generator picks pairs and float64 inputs by position. The last three exercise the two
# rounding rules of the preprocessing: after Resize(512) their long side (667, 723, 3639) is odd, so the centre
# crop's offset is a .5 that torchvision rounds half to even (not down), and 512 * long / short has a fraction above
# .5 (.648, .862, .810), so int() and round() give different sizes. tiny_29x41 is upscaled 17x and portrait (the
# vertical offset); full-size maps are stored for it (1,189 pixels). wide_1500x211 is a 7:1 strip.
IMAGES: tuple[SyntheticImage, ...] = (
    SyntheticImage("small_373x361.jpg", 373, 361, "L", seed=1),
    SyntheticImage("landscape_rgb_600x500.jpg", 600, 500, "RGB", seed=2),
    SyntheticImage("portrait_512x640.png", 512, 640, "L", seed=3),
    SyntheticImage("large_12bit_2048x2496.png", 2048, 2496, "I;16", seed=4, bits=12),
    SyntheticImage("odd_margin_652x500.jpg", 652, 500, "L", seed=5),
    SyntheticImage("tiny_29x41.png", 29, 41, "L", seed=6),
    SyntheticImage("wide_1500x211.png", 1500, 211, "L", seed=7),
)


def thorax(width: int, height: int, seed: int) -> np.ndarray:
    """A float64 [height, width] image in [0, 1]: smooth structures only (so PNGs of it compress well)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / width - 0.5, y / height - 0.5
    img = 0.55 + 0.25 * v + 0.05 * rng.uniform(-1, 1) * u
    for side in (-1, 1):  # two lung fields, darker ellipses with seed-dependent centre, size and tilt
        cx, cy = side * rng.uniform(0.17, 0.25), rng.uniform(-0.08, 0.05)
        ax, ay, tilt = rng.uniform(0.12, 0.18), rng.uniform(0.25, 0.33), rng.uniform(-0.3, 0.3)
        du, dv = u - cx, v - cy
        ru = du * np.cos(tilt) + dv * np.sin(tilt)
        rv = -du * np.sin(tilt) + dv * np.cos(tilt)
        r2 = (ru / ax) ** 2 + (rv / ay) ** 2
        img -= rng.uniform(0.25, 0.4) * np.exp(-(r2**2))
    img += 0.15 * np.exp(-((u / 0.07) ** 2)) * (v > -0.3)  # mediastinum
    img += 0.2 / (1 + np.exp(-(v - rng.uniform(0.28, 0.36)) * 40))  # diaphragm
    freq, phase = rng.uniform(14, 22), rng.uniform(0, 2 * np.pi)
    img += 0.04 * np.sin(freq * np.pi * v + 3 * u**2 + phase) * (np.abs(u) < 0.4)  # ribs
    for _ in range(3):  # seed-dependent focal opacities
        cx, cy, s = rng.uniform(-0.3, 0.3), rng.uniform(-0.25, 0.25), rng.uniform(0.02, 0.06)
        img += rng.uniform(0.05, 0.15) * np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * s**2))
    return np.clip((img - img.min()) / (img.max() - img.min()), 0.0, 1.0)


def render(spec: SyntheticImage) -> Image.Image:
    """The PIL image of ``spec`` (RGB gets a slight per-channel tint so the RGB->L conversion matters)."""
    base = thorax(spec.width, spec.height, spec.seed)
    if spec.mode == "I;16":
        top = (1 << spec.bits) - 1
        arr16 = np.round(64 + base * (top - 128)).astype(np.uint16)  # not min-max stretched: remapping is tested
        return Image.fromarray(arr16)
    arr = np.round(base * 255).astype(np.uint8)
    if spec.mode == "RGB":
        tint = np.stack([arr, np.clip(arr.astype(np.int16) - 12, 0, 255).astype(np.uint8), arr // 2 + 60], -1)
        return Image.fromarray(tint.astype(np.uint8), "RGB")
    return Image.fromarray(arr, "L")


def write_all(folder: Path) -> list[Path]:
    """Write every image of :data:`IMAGES` into ``folder`` (JPEG quality 90, PNG default compression)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in IMAGES:
        path = folder / spec.name
        im = render(spec)
        if spec.name.endswith(".jpg"):
            im.save(path, format="JPEG", quality=90)
        else:
            im.save(path, format="PNG", optimize=True)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all(Path(__file__).parent / "images"):
        print(p, p.stat().st_size)

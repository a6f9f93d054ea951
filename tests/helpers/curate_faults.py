"""Planted faults with known answers for the curation checks: synthetic vectors (any size) and real images.

``synthetic_faults`` draws a labelled, split corpus of unit vectors (images clustered by label, each report a noisy
copy of its image) and plants: reports swapped between cases, labels flipped, outlier images (random directions)
and cross-split near-duplicates. ``plant_images`` writes rotated, inverted, blank and non-CXR variants of real
images. Used by the curation tests and ``benchmarks/curate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from cxr_explorer.retrieval.bundle.writer import build_index
from cxr_explorer.retrieval.curate.base import CurateData

REPORT_NOISE = 0.5
"""Norm of the noise that makes a report vector from its image vector (cosine of a pair about 0.9)."""
LABELS = ("Effusion", "Pneumonia", "Cardiomegaly", "Edema", "Atelectasis", "No Finding")


@dataclass
class Planted:
    """The corpus and the ids of each planted fault (``duplicates`` holds the test-side id of each pair)."""

    data: CurateData
    swapped: set[str] = field(default_factory=set)
    flipped: set[str] = field(default_factory=set)
    outliers: set[str] = field(default_factory=set)
    duplicates: set[str] = field(default_factory=set)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic_faults(n: int, dim: int = 128, rate: float = 0.01, seed: int = 0, index_type: str = "flat"
                     ) -> Planted:
    """``n`` cases with ``rate * n`` of each fault planted (disjoint sets); the indexes are built with FAISS."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(LABELS), dim)).astype(np.float32)
    cls = rng.integers(0, len(LABELS), n)
    second = np.where(rng.random(n) < 0.2, rng.integers(0, len(LABELS), n), cls)  # ~20 % carry two labels
    images = _unit(centres[cls] + 0.5 * centres[second] * (second != cls)[:, None]
                   + 0.45 * rng.standard_normal((n, dim)).astype(np.float32) * np.sqrt(128 / dim))
    reports = _unit(images + REPORT_NOISE * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim))
    labels = ["|".join(sorted({LABELS[a], LABELS[b]})) for a, b in zip(cls, second, strict=True)]
    split = np.where(rng.random(n) < 0.8, "train", "test")
    m = max(1, int(rate * n))
    pick = rng.permutation(n)
    swap_a, swap_b = pick[:m], pick[m:2 * m]
    flip, out, dup = pick[2 * m:3 * m], pick[3 * m:4 * m], pick[4 * m:5 * m]
    reports[swap_a], reports[swap_b] = reports[swap_b].copy(), reports[swap_a].copy()
    for i in flip:  # one label the case does not have
        labels[i] = str(rng.choice([lab for j, lab in enumerate(LABELS) if j not in (cls[i], second[i])]))
    images[out] = _unit(rng.standard_normal((m, dim)).astype(np.float32))
    reports[out] = _unit(images[out] + REPORT_NOISE * rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim))
    train = np.flatnonzero(split == "train")
    sources = rng.choice(np.setdiff1d(train, pick[:5 * m]), m, replace=False)
    split[dup] = "test"
    images[dup] = _unit(images[sources] + 0.005 * rng.standard_normal((m, dim)).astype(np.float32))
    for d, src in zip(dup, sources, strict=True):  # a duplicate carries its source's labels and report
        labels[d] = labels[src]
    reports[dup] = reports[sources]
    ids = np.array([f"c{i:07d}" for i in range(n)])
    meta = pd.DataFrame({"id": ids, "labels": labels, "split": split, "report": ["r"] * n})
    data = CurateData(name=f"synthetic-{n}", ids=ids, metadata=meta, image_vectors=images,
                      image_index=build_index(images, index_type)[0], report_vectors=reports,
                      report_rows=np.arange(n, dtype=np.int64), report_index=build_index(reports, index_type)[0])
    return Planted(data, swapped=set(ids[np.r_[swap_a, swap_b]]), flipped=set(ids[flip]), outliers=set(ids[out]),
                   duplicates=set(ids[dup]))


def plant_images(sources: list[Path], out_dir: Path, seed: int = 0) -> dict[str, str]:
    """Write one faulty variant per kind from ``sources`` into ``out_dir``: {file name: fault kind}.

    Kinds: rotated (90 degrees), upside-down, inverted, blank, noise (not a CXR). Sources must be >= 5 images.
    """
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    makers = {
        "rotated": lambda im: im.rotate(90, expand=True),
        "upside-down": lambda im: im.rotate(180),
        "inverted": ImageOps.invert,
        "blank": lambda im: Image.new("L", im.size, 200),
        "noise": lambda im: Image.fromarray(rng.integers(0, 256, (im.height, im.width), dtype=np.uint8), "L"),
    }
    for i, (kind, make) in enumerate(makers.items()):
        img = Image.open(sources[i]).convert("L")
        name = f"planted_{kind}_{i}.png"
        make(img).save(out_dir / name)
        kinds[name] = kind
    return kinds

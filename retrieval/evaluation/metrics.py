"""Phrase-grounding metrics for MS-CXR-style (phrase, boxes) pairs: CNR, IoU / mIoU, bootstrap CIs, per-class summary.

Definitions and sources
-----------------------
The primary sources are Boecking et al., "Making the Most of Text Semantics to Improve Biomedical Vision-Language
Processing", ECCV 2022 (arXiv 2204.09817): the MS-CXR phrase-grounding experiments and the appendix describing that
evaluation; and Bannur et al., "Learning to Exploit Temporal Structure for Biomedical Vision-Language Processing"
(BioViL-T), CVPR 2023 (arXiv 2301.04558), which reports MS-CXR phrase grounding with the same metrics. Section
numbers and wording could not be checked.

What was and was not verified (search of stored public copies only): the full text of neither paper could be read;
only their abstracts were found. The CNR formula below matches our notes and several public third-party MS-CXR
evaluation scripts (not the authors' code), whose docstrings say "let A and A_ denote the interior and exterior of the
bounding box, respectively" and ``CNR = |meanA - meanA_| / pow((varA_ + varA), 0.5)``. That reads like a quote of the
paper but is second-hand. The mIoU thresholds {0.1, ..., 0.5} are from our notes ("from memory") and are NOT verified.

* ``CNR = |mean_A - mean_Abar| / sqrt(var_A + var_Abar)`` with A the similarity-map pixels inside the ground-truth
  box(es) of a phrase (union of its boxes) and Abar the pixels outside. No threshold is applied. Variances are
  population variances (``ddof=0``). When the denominator is 0 we return ``inf`` if the means differ, else ``0.0``.
* ``IoU(t) = |box mask AND (map > t)| / |box mask OR (map > t)|`` (strict ``>``), ``mIoU`` = mean of IoU(t) over the
  thresholds ``(0.1, 0.2, 0.3, 0.4, 0.5)``, applied to the raw cosine-similarity map (no rescaling). An empty
  prediction gives IoU 0 (some third-party scripts return NaN there instead).

Our decision (not from the papers): NaN pixels, i.e. those outside the model's centre crop (see
:func:`retrieval.grounding.maps.to_image_size`), are EXCLUDED from both A and Abar and from both sides of the IoU,
because the model never saw them; the paper evaluates on the model's crop. A metric whose region is empty after this
exclusion is NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import ceil
from typing import TypedDict

import numpy as np

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
Box = tuple[float, float, float, float]
"""MS-CXR box ``(x, y, w, h)`` in pixels of the original image; x to the right, y downwards."""


@dataclass(frozen=True)
class GroundingRecord:
    """Metrics of one (image, phrase) pair."""

    finding: str
    cnr: float
    miou: float


@dataclass(frozen=True)
class Estimate:
    """A statistic with its percentile-bootstrap confidence interval over ``n`` finite values."""

    value: float
    lo: float
    hi: float
    n: int


class MetricPair(TypedDict):
    """CNR and mIoU estimates of one group of records."""

    cnr: Estimate
    miou: Estimate


class GroundingSummary(TypedDict):
    """Per-class and pooled (all records) estimates, plus the unweighted mean of the class means."""

    per_class: dict[str, MetricPair]
    overall: MetricPair
    class_mean: dict[str, float]


def box_mask(height: int, width: int, boxes: Sequence[Box]) -> np.ndarray:
    """Boolean ``[height, width]`` mask of the union of ``(x, y, w, h)`` boxes.

    A pixel ``(row, col)`` is inside when its centre ``(col + 0.5, row + 0.5)`` lies in ``[x, x + w) x [y, y + h)``;
    for integer boxes that is exactly ``mask[y:y + h, x:x + w]``. Boxes are clipped to the image.
    """
    mask = np.zeros((height, width), dtype=bool)
    for x, y, w, h in boxes:
        c0, c1 = max(ceil(x - 0.5), 0), min(ceil(x + w - 0.5), width)
        r0, r1 = max(ceil(y - 0.5), 0), min(ceil(y + h - 0.5), height)
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = True
    return mask


def _valid_regions(sim_map: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values ``[n]`` and box membership ``[n]`` of the non-NaN pixels of a ``[H, W]`` map."""
    values = np.asarray(sim_map, dtype=np.float64)
    inside = np.asarray(mask, dtype=bool)
    if values.shape != inside.shape:
        raise ValueError(f"sim_map {values.shape} and mask {inside.shape} must have the same shape")
    valid = ~np.isnan(values)
    return values[valid], inside[valid]


def cnr(sim_map: np.ndarray, mask: np.ndarray) -> float:
    """Contrast-to-noise ratio of a ``[H, W]`` map between the box region and the rest (NaN pixels excluded)."""
    values, inside = _valid_regions(sim_map, mask)
    a, abar = values[inside], values[~inside]
    if a.size == 0 or abar.size == 0:
        return float("nan")
    contrast = abs(float(a.mean()) - float(abar.mean()))
    noise = float(np.sqrt(a.var() + abar.var()))
    if noise == 0.0:
        return float("inf") if contrast > 0.0 else 0.0
    return contrast / noise


def iou_at(sim_map: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    """IoU of the box mask with ``sim_map > threshold`` over the non-NaN pixels of a ``[H, W]`` map.

    NaN when both sets are empty (no valid box pixel and no valid pixel above the threshold).
    """
    values, inside = _valid_regions(sim_map, mask)
    predicted = values > threshold
    union = int(np.count_nonzero(predicted | inside))
    if union == 0:
        return float("nan")
    return int(np.count_nonzero(predicted & inside)) / union


def miou(sim_map: np.ndarray, mask: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> float:
    """Mean of :func:`iou_at` over ``thresholds`` (NaN if any IoU is undefined)."""
    if len(thresholds) == 0:
        raise ValueError("thresholds must not be empty")
    return float(np.mean([iou_at(sim_map, mask, t) for t in thresholds]))


def bootstrap_ci(
    values: np.ndarray | Sequence[float],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    stat: Callable[[np.ndarray], float] = np.mean,
) -> tuple[float, float, float]:
    """Statistic of ``[n]`` values and its ``1 - alpha`` percentile-bootstrap interval: ``(estimate, lo, hi)``.

    Resamples with replacement ``n_boot`` times from ``numpy.random.default_rng(seed)`` (deterministic for a seed).
    Empty input gives NaNs; the caller decides what to do with non-finite values.
    """
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    if not 0.0 < alpha < 1.0 or n_boot < 1:
        raise ValueError(f"need 0 < alpha < 1 and n_boot >= 1, got alpha={alpha}, n_boot={n_boot}")
    if data.size == 0:
        nan = float("nan")
        return nan, nan, nan
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, data.size, size=(n_boot, data.size))]
    boot = np.array([stat(sample) for sample in samples], dtype=np.float64)
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(stat(data)), float(lo), float(hi)


def _estimate(values: Sequence[float], n_boot: int, alpha: float, seed: int) -> Estimate:
    """Mean and bootstrap CI of the non-NaN values (``inf`` is kept: it is a valid CNR)."""
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    value, lo, hi = bootstrap_ci(data, n_boot=n_boot, alpha=alpha, seed=seed)
    return Estimate(value=value, lo=lo, hi=hi, n=int(data.size))


def _pair(records: Sequence[GroundingRecord], n_boot: int, alpha: float, seed: int) -> MetricPair:
    """CNR and mIoU estimates of a group of records."""
    return MetricPair(
        cnr=_estimate([r.cnr for r in records], n_boot, alpha, seed),
        miou=_estimate([r.miou for r in records], n_boot, alpha, seed),
    )


def summarise_by_class(
    records: Sequence[GroundingRecord], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> GroundingSummary:
    """Per-finding and overall mean CNR / mIoU with bootstrap CIs.

    ``overall`` pools all records (each phrase weighs the same); ``class_mean`` is the unweighted mean of the
    per-class means (each finding weighs the same). NaN metrics are left out and reflected in ``Estimate.n``.
    """
    by_class: dict[str, list[GroundingRecord]] = {}
    for record in records:
        by_class.setdefault(record.finding, []).append(record)
    per_class = {name: _pair(group, n_boot, alpha, seed) for name, group in sorted(by_class.items())}
    pairs = list(per_class.values())
    class_mean = {
        "cnr": float(np.mean([p["cnr"].value for p in pairs])) if pairs else float("nan"),
        "miou": float(np.mean([p["miou"].value for p in pairs])) if pairs else float("nan"),
    }
    return GroundingSummary(per_class=per_class, overall=_pair(records, n_boot, alpha, seed), class_mean=class_mean)

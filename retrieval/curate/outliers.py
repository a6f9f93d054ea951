"""Outliers in the image space: the mean cosine distance to the ``k`` nearest other images.

The distance (1 - cosine, in [0, 2]) does not depend on the bundle's size or spread, so it compares across bundles
of the same model; ``robust_z`` places it within this bundle and sets ``flagged``. With a reference bundle
(``--against``), the distance to the reference's ``k`` nearest images is given too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.curate.base import (
    CheckResult,
    CurateData,
    evidence_json,
    finish_table,
    knn,
    robust_z,
    self_knn,
)
from cxr_explorer.retrieval.curate.registry import CheckInputs, CheckSpec, Tunable, register

EVIDENCE_NEIGHBOURS = 3
NAME = "outliers"
TITLE = "Outliers (image space)"


@dataclass(frozen=True)
class OutlierConfig:
    """``k`` neighbours; flagged when the robust z of the kNN distance is at least ``min_z``."""

    k: int = 10
    min_z: float = 3.5


def check_outliers(data: CurateData, config: OutlierConfig | None = None,
                   reference: CurateData | None = None) -> CheckResult:
    """kNN-distance outliers of ``data``'s images, farthest first (see the module docstring)."""
    cfg = config or OutlierConfig()
    thresholds: dict[str, float | int | str] = {"k": cfg.k, "min_z": cfg.min_z}
    if data.count < 2:
        return CheckResult(NAME, TITLE, finish_table(pd.DataFrame(), [], []), thresholds,
                           {"note": "needs at least 2 cases"})
    sims, neigh = self_knn(data.image_index, data.image_vectors, cfg.k)
    distance = 1.0 - sims.astype(np.float64).mean(axis=1)
    z = robust_z(distance)
    frame = pd.DataFrame({
        "id": data.ids, "row": np.arange(data.count), "severity": distance, "flagged": z >= cfg.min_z,
        "evidence": [evidence_json({"nearest": [{"id": str(data.ids[j]), "cosine": round(float(s), 4)}
                                                for s, j in zip(sims[i, :EVIDENCE_NEIGHBOURS],
                                                                neigh[i, :EVIDENCE_NEIGHBOURS], strict=True)]})
                     for i in range(data.count)],
        "knn_distance": distance, "robust_z": z, "percentile": pd.Series(distance).rank(pct=True).to_numpy() * 100,
    })
    if reference is not None:
        ref_sims, _ = knn(reference.image_index, data.image_vectors, cfg.k)
        frame["reference_knn_distance"] = 1.0 - ref_sims.astype(np.float64).mean(axis=1)
        thresholds["reference"] = reference.name
    table = finish_table(frame, ["severity"], [False])
    return CheckResult(NAME, TITLE, table, thresholds,
                       {"flagged": int(frame["flagged"].sum()),
                        "median_knn_distance": round(float(np.median(distance)), 6)})


def _run(data: CurateData, settings: OutlierConfig, inputs: CheckInputs) -> CheckResult:
    return check_outliers(data, settings, inputs.other)


SPEC = CheckSpec(
    name=NAME, title=TITLE, short_title="Outliers", looks_for="outliers",
    help="images far from the corpus: mean cosine distance to the k nearest images and its robust z (with a second "
    "bundle, the distance to it too)",
    columns=("knn_distance", "robust_z", "percentile"), settings=OutlierConfig, run=_run,
    tunables=(Tunable("k", "k"),),
    terms=(
        ('knn_distance',
         'mean cosine distance (1 - cosine) to the k nearest other images'),
        ('robust_z',
         'how unusual that distance is here: (distance - median) / (1.4826 x median absolute deviation)'),
        ('percentile',
         "percent of this bundle's cases with at most this distance (100 = the farthest)"),
        ('k',
         'how many nearest images are searched per case (only these are looked at)'),
        ('min_z',
         'flagged when robust_z is at least this'),
    ))
register(SPEC)

"""Run the curation checks over a bundle and write the report folder: one table per check (parquet + CSV, with
scores, evidence and thresholds) and ``summary.json``."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cxr_explorer.retrieval.curate.base import CheckResult, CurateData
from cxr_explorer.retrieval.curate.labels import LabelConfig, check_labels
from cxr_explorer.retrieval.curate.leakage import LeakageConfig, check_cross_bundle, check_split_leakage
from cxr_explorer.retrieval.curate.mismatch import MismatchConfig, check_mismatch
from cxr_explorer.retrieval.curate.outliers import OutlierConfig, check_outliers
from cxr_explorer.retrieval.curate.pixels import PixelConfig, check_pixels

SUMMARY = "summary.json"
CHECK_NAMES = ("mismatch", "labels", "outliers", "pixels", "leakage_split", "leakage_bundles")


@dataclass(frozen=True)
class CurateConfig:
    """Which checks run and with what settings; None columns skip the checks that need them."""

    label_col: str | None = None
    split_col: str | None = None
    pixels: bool = True
    mismatch: MismatchConfig = field(default_factory=MismatchConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    outliers: OutlierConfig = field(default_factory=OutlierConfig)
    pixel: PixelConfig = field(default_factory=PixelConfig)
    leakage: LeakageConfig = field(default_factory=LeakageConfig)


def run_checks(data: CurateData, config: CurateConfig | None = None, other: CurateData | None = None,
               prompts: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
               progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Every check that applies: mismatch (when there are reports), labels (``label_col``), outliers, pixels
    (thumbnails), split leakage (``split_col``) and cross-bundle leakage (``other``)."""
    cfg = config or CurateConfig()
    say = progress or (lambda _name: None)
    out: list[CheckResult] = []
    say("mismatch")
    out.append(check_mismatch(data, cfg.mismatch))
    if cfg.label_col:
        say("labels")
        out.append(check_labels(data, cfg.label_col, cfg.labels, prompts))
    say("outliers")
    out.append(check_outliers(data, cfg.outliers, other))
    if cfg.pixels and data.thumbnail is not None:
        say("pixels")
        out.append(check_pixels(data, cfg.pixel))
    if cfg.split_col:
        say("leakage_split")
        out.append(check_split_leakage(data, cfg.split_col, cfg.leakage))
    if other is not None:
        say("leakage_bundles")
        out.append(check_cross_bundle(data, other, cfg.leakage))
    return out


def write_report(out_dir: str | os.PathLike[str], results: list[CheckResult], *, bundle: str,
                 extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``<check>.parquet`` and ``<check>.csv`` per result and ``summary.json``; returns the summary path.

    Each table carries its thresholds as ``threshold_<name>`` columns too, so a CSV read alone is self-describing.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checks = {}
    for r in results:
        table = r.table.copy()
        for key, value in r.thresholds.items():
            table[f"threshold_{key}"] = value
        table.to_parquet(out / f"{r.name}.parquet", index=False)
        table.to_csv(out / f"{r.name}.csv", index=False)
        checks[r.name] = {"title": r.title, "rows": int(len(r.table)), "flagged": r.flagged,
                          "thresholds": r.thresholds, "summary": r.summary,
                          "files": [f"{r.name}.parquet", f"{r.name}.csv"],
                          "worst": r.table["id"].astype(str).head(10).tolist() if len(r.table) else []}
    summary = {"bundle": bundle, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "note": "scores are cosine similarities, ranks, margins and shares of neighbours, not probabilities",
               "checks": checks, **dict(extra or {})}
    path = out / SUMMARY
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def config_dict(config: CurateConfig) -> dict[str, Any]:
    """The config as plain JSON-friendly data (for the summary)."""
    return asdict(config)

"""Run the curation checks over a bundle and write the report folder: one table per check (parquet + CSV, with
scores, evidence and thresholds) and ``summary.json``."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.bundle.store.atomic import Writer, write_set
from cxr_explorer.retrieval.curate.base import CheckResult, CurateData
from cxr_explorer.retrieval.curate.registry import CheckInputs, CheckSpec, checks

SUMMARY = "summary.json"


@dataclass(frozen=True)
class CurateConfig:
    """Which checks run and with what settings: ``label_col`` / ``split_col`` (None skips the checks that need
    them), ``skip`` (check names not to run) and ``settings`` (check name -> that check's settings dataclass; a
    check left out runs with its defaults)."""

    label_col: str | None = None
    split_col: str | None = None
    skip: frozenset[str] = frozenset()
    settings: Mapping[str, object] = field(default_factory=dict)

    def settings_of(self, spec: CheckSpec[Any]) -> Any:
        """The settings ``spec`` runs with under this config."""
        return spec.settings_from(self.settings.get(spec.name))


def run_checks(data: CurateData, config: CurateConfig | None = None, other: CurateData | None = None,
               prompts: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
               progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Every registered check whose needs are met (a label column, a split column, thumbnails, a second bundle
    ``other``) and that ``config`` does not skip, in registry order; ``progress(name)`` before each. A name in
    ``config`` that no registered check has is a ValueError."""
    cfg = config or CurateConfig()
    unknown = sorted((set(cfg.skip) | set(cfg.settings)) - {spec.name for spec in checks()})
    if unknown:
        raise ValueError(f"no curation check named {', '.join(map(repr, unknown))}")
    say = progress or (lambda _name: None)
    inputs = CheckInputs(label_col=cfg.label_col, split_col=cfg.split_col, other=other, prompts=prompts)
    out: list[CheckResult] = []
    for spec in checks():
        if spec.name in cfg.skip or spec.missing(data, inputs):
            continue
        say(spec.name)
        out.append(spec.run_with(data, cfg.settings_of(spec), inputs))
    return out


def write_report(out_dir: str | os.PathLike[str], results: list[CheckResult], *, bundle: str,
                 extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``<check>.parquet`` and ``<check>.csv`` per result and ``summary.json``; returns the summary path.

    Every file is written atomically and ``summary.json`` last, after the old one is removed
    (:func:`retrieval.bundle.store.atomic.write_set`): a summary on disk always describes complete tables of its run.

    Each table carries its thresholds as ``threshold_<name>`` columns too, so a CSV read alone is self-describing.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checks = {}
    files: dict[Path, Writer] = {}
    for r in results:
        table = r.table.copy()
        for key, value in r.thresholds.items():
            table[f"threshold_{key}"] = value
        files[out / f"{r.name}.parquet"] = partial(_parquet, table)
        files[out / f"{r.name}.csv"] = partial(_csv, table)
        checks[r.name] = {"title": r.title, "rows": int(len(r.table)), "flagged": r.flagged,
                          "thresholds": r.thresholds, "summary": r.summary,
                          "files": [f"{r.name}.parquet", f"{r.name}.csv"],
                          "worst": r.table["id"].astype(str).head(10).tolist() if len(r.table) else []}
    summary = {"bundle": bundle, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "note": "scores are cosine similarities, ranks, margins and shares of neighbours, not probabilities",
               "checks": checks, **dict(extra or {})}
    path = out / SUMMARY
    text = (json.dumps(summary, indent=2, default=str) + "\n").encode("utf-8")
    write_set(files, last=path, last_writer=lambda fh: fh.write(text))
    return path


def _parquet(table: pd.DataFrame, fh: IO[bytes]) -> None:
    table.to_parquet(fh, index=False)


def _csv(table: pd.DataFrame, fh: IO[bytes]) -> None:
    fh.write(table.to_csv(index=False).encode("utf-8"))


def config_dict(config: CurateConfig) -> dict[str, Any]:
    """The config as plain JSON-friendly data (for the summary): the columns, the skipped checks and every
    registered check's settings."""
    return {"label_col": config.label_col, "split_col": config.split_col, "skip": sorted(config.skip),
            "settings": {spec.name: asdict(config.settings_of(spec)) for spec in checks()}}

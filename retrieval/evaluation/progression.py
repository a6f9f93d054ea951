"""Temporal (interval-change) classification on an MS-CXR-T-format CSV: zero-shot improving / stable / worsening
per finding from BioViL-T's fused (current + prior) embedding; accuracy and macro-accuracy with bootstrap CIs.

Input CSV, long format: one row per (current, prior, finding, label); column names detected among
``current``/``current_image``/``image``/``dicom_path`` and ``prior``/``prior_image``/``previous``/``previous_image``.
Wide format (as MS-CXR-T's release): a current and a prior column plus ``<finding>_progression`` label columns
(empty = not labelled), e.g. ``pleural_effusion_progression``. Labels: improving, stable, worsening (also improved,
unchanged, worsened, ...). Rows with an unknown label or an unreadable image are skipped with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxr_explorer.retrieval.engine.query_cache import QueryEncoder
from cxr_explorer.retrieval.evaluation.datasets import AnnotationError, read_csv
from cxr_explorer.retrieval.evaluation.metrics import bootstrap_ci
from cxr_explorer.retrieval.inputs.images import ImageLoadError, load_image
from cxr_explorer.retrieval.temporal.interval import CLASSES, encode_pair, has_temporal_path, interval_change

__all__ = ["ProgressionCase", "evaluate_progression", "macro_accuracy", "read_progression_cases"]

_CURRENT = ("current", "current_image", "current_path", "image", "image_path", "dicom_path")
_PRIOR = ("prior", "prior_image", "prior_path", "previous", "previous_image", "previous_path")
_SYNONYMS = {"improving": "improving", "improved": "improving", "improvement": "improving", "better": "improving",
             "stable": "stable", "unchanged": "stable", "no change": "stable", "worsening": "worsening",
             "worsened": "worsening", "worse": "worsening", "progression": "worsening"}


@dataclass(frozen=True)
class ProgressionCase:
    """One labelled pair: image paths, the finding and its label (one of
    :data:`retrieval.temporal.interval.CLASSES`)."""

    current: Path
    prior: Path
    finding: str
    label: str


@dataclass(frozen=True)
class _Row:
    finding: str
    true: int
    pred: int


def _pick(table: pd.DataFrame, candidates: tuple[str, ...], what: str, csv: str | Path) -> str:
    lower = {c.lower(): c for c in table.columns}
    found = next((lower[c] for c in candidates if c in lower), None)
    if found is None:
        raise AnnotationError(f"{csv}: no {what} column (looked for {', '.join(candidates)})")
    return found


def read_progression_cases(csv: str | Path, images_dir: str | Path | None = None
                           ) -> tuple[list[ProgressionCase], list[dict[str, str]]]:
    """(cases, skipped rows with reasons) of a long- or wide-format progression CSV."""
    table = read_csv(csv).fillna("")
    base = Path(images_dir) if images_dir is not None else Path(csv).parent
    cur_col, prior_col = _pick(table, _CURRENT, "current-image", csv), _pick(table, _PRIOR, "prior-image", csv)
    wide = [c for c in table.columns if c.lower().endswith("_progression")]
    if wide:
        long = table.melt(id_vars=[cur_col, prior_col], value_vars=wide, var_name="finding", value_name="label")
        long["finding"] = [c[: -len("_progression")].replace("_", " ").lower() for c in long["finding"]]
        long = long[long["label"].astype(str).str.strip() != ""]
    else:
        finding_col = _pick(table, ("finding", "category", "condition"), "finding", csv)
        label_col = _pick(table, ("label", "progression", "change"), "label", csv)
        long = table.rename(columns={finding_col: "finding", label_col: "label"})
    cases, skipped = [], []
    for row in long.to_dict("records"):
        label = _SYNONYMS.get(str(row["label"]).strip().lower())
        cur, prior = (base / str(row[c]).strip() for c in (cur_col, prior_col))
        if label is None:
            skipped.append({"current": str(cur), "finding": str(row["finding"]), "reason": "unknown-label",
                            "detail": f"label {row['label']!r} is not improving, stable or worsening"})
            continue
        cases.append(ProgressionCase(cur, prior, str(row["finding"]).strip().lower(), label))
    if not cases:
        raise AnnotationError(f"{csv}: no labelled pairs")
    return cases, skipped


def _codes(y_true: Sequence[int], y_pred: Sequence[int]) -> np.ndarray:
    return np.asarray(y_true, np.int64) * len(CLASSES) + np.asarray(y_pred, np.int64)


def _acc(codes: np.ndarray) -> float:
    k = len(CLASSES)
    return float(np.mean(codes // k == codes % k)) if codes.size else float("nan")


def macro_accuracy(codes: np.ndarray) -> float:
    """Mean over the classes present in the truth of the per-class accuracy (recall); codes = true * 3 + pred."""
    k = len(CLASSES)
    true, pred = codes // k, codes % k
    recalls = [float(np.mean(pred[true == c] == c)) for c in range(k) if np.any(true == c)]
    return float(np.mean(recalls)) if recalls else float("nan")


def _estimate(codes: np.ndarray, stat: Any, n_boot: int) -> dict[str, float]:
    value, lo, hi = bootstrap_ci(codes, n_boot=n_boot, stat=lambda a: stat(a.astype(np.int64)))
    return {"value": value, "lo": lo, "hi": hi}


def evaluate_progression(model: Any, cases: Sequence[ProgressionCase], n_boot: int = 1000) -> dict[str, Any]:
    """Predict each case's class (best zero-shot cosine) and summarise per finding and overall."""
    if not has_temporal_path(model):
        raise ValueError(f"model {model.spec.name!r} has no prior-image path; progression needs biovil-t")
    encoder = QueryEncoder(model)
    pairs: dict[tuple[Path, Path], torch.Tensor | str] = {}
    rows: list[_Row] = []
    skipped: list[dict[str, str]] = []
    for case in cases:
        key = (case.current, case.prior)
        if key not in pairs:
            try:
                cur, prior = load_image(case.current).image, load_image(case.prior).image
                pairs[key] = encode_pair(model, cur, prior).global_emb[0]
            except ImageLoadError as exc:
                pairs[key] = f"{exc.reason}: {exc}"
        emb = pairs[key]
        if isinstance(emb, str):
            skipped.append({"current": str(case.current), "finding": case.finding, "reason": "unreadable",
                            "detail": emb})
            continue
        (change,) = interval_change(encoder, emb, (case.finding,))
        rows.append(_Row(case.finding, CLASSES.index(case.label), CLASSES.index(change.predicted)))
    per: dict[str, Any] = {}
    for finding in sorted({r.finding for r in rows}):
        sel = [r for r in rows if r.finding == finding]
        codes = _codes([r.true for r in sel], [r.pred for r in sel])
        per[finding] = {"n": len(sel), "accuracy": _estimate(codes, _acc, n_boot),
                        "macro_accuracy": _estimate(codes, macro_accuracy, n_boot),
                        "labels": {c: sum(r.true == i for r in sel) for i, c in enumerate(CLASSES)}}
    every = _codes([r.true for r in rows], [r.pred for r in rows])
    return {"task": "progression", "pairs": len(rows), "image_pairs": len(pairs), "per_finding": per,
            "overall": {"n": len(rows), "accuracy": _estimate(every, _acc, n_boot),
                        "macro_accuracy": _estimate(every, macro_accuracy, n_boot)},
            "mean_over_findings": {"macro_accuracy": float(np.mean([p["macro_accuracy"]["value"]
                                                                    for p in per.values()])) if per else None},
            "skipped": skipped, "n_boot": n_boot, "classes": list(CLASSES),
            "note": "zero-shot: the class whose prompt set has the highest cosine with the fused embedding"}

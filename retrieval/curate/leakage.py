"""Leakage and overlap: near-duplicate image pairs across two bundles (train vs test), or within one bundle across
the values of a split column. Each item is searched once for its ``k`` nearest images (O(N k)); a pair is kept at
cosine >= ``min_cosine``. The report cosine of the pair (when both have reports) is given as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.curate.base import CheckResult, CurateData, evidence_json, finish_table, knn, self_knn
from cxr_explorer.retrieval.curate.registry import CheckInputs, CheckSpec, Need, Tunable, register

SPLIT_NAME, SPLIT_TITLE = "leakage_split", "Leakage across splits"
BUNDLES_NAME = "leakage_bundles"


@dataclass(frozen=True)
class LeakageConfig:
    """``k`` neighbours searched per item; pairs at cosine >= ``min_cosine`` are duplicates."""

    k: int = 5
    min_cosine: float = 0.95


def _report_lookup(data: CurateData) -> np.ndarray:
    """[N] report position of each item row, -1 when it has no report."""
    pos = np.full(data.count, -1, dtype=np.int64)
    pos[np.asarray(data.report_rows, dtype=np.int64)] = np.arange(len(data.report_rows))
    return pos


def _report_cosine(a: CurateData, rows_a: np.ndarray, b: CurateData, rows_b: np.ndarray) -> np.ndarray:
    """[P] cosine of the reports of pairs (rows_a[i], rows_b[i]); NaN where either has none."""
    pa, pb = _report_lookup(a)[rows_a], _report_lookup(b)[rows_b]
    both = (pa >= 0) & (pb >= 0)
    out = np.full(len(rows_a), np.nan)
    if both.any():
        va = np.asarray(a.report_vectors[pa[both]], dtype=np.float32)
        vb = np.asarray(b.report_vectors[pb[both]], dtype=np.float32)
        out[both] = np.einsum("nd,nd->n", va, vb)
    return out


def _pairs_table(a: CurateData, rows_a: np.ndarray, b: CurateData, rows_b: np.ndarray, cos: np.ndarray,
                 extra: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per pair: the ``a`` case is the one a curator reviews (id/row), the other is evidence."""
    rep = _report_cosine(a, rows_a, b, rows_b)
    return pd.DataFrame({
        "id": a.ids[rows_a], "row": rows_a, "severity": cos, "flagged": np.ones(len(cos), dtype=bool),
        "evidence": [evidence_json({"other_bundle": b.name, "other_id": str(b.ids[j])}) for j in rows_b],
        "other_id": b.ids[rows_b], "other_row": rows_b, "other_bundle": [b.name] * len(rows_b), "cosine": cos,
        "report_cosine": rep, **extra,
    })


def check_cross_bundle(data: CurateData, other: CurateData, config: LeakageConfig | None = None) -> CheckResult:
    """Near-duplicate pairs between ``data`` (e.g. test) and ``other`` (e.g. train), most similar first."""
    cfg = config or LeakageConfig()
    sims, labels = knn(other.image_index, data.image_vectors, cfg.k)
    qi, hi = np.nonzero((sims >= cfg.min_cosine) & (labels >= 0))
    table = _pairs_table(data, qi.astype(np.int64), other, labels[qi, hi].astype(np.int64),
                         sims[qi, hi].astype(np.float64), {})
    result = finish_table(table, ["severity"], [False])
    return CheckResult(BUNDLES_NAME, f"Near-duplicates in {other.name}", result,
                       {"k": cfg.k, "min_cosine": cfg.min_cosine, "other": other.name},
                       {"pairs": int(len(result)), "cases": int(result["id"].nunique()) if len(result) else 0,
                        "other_cases": int(result["other_id"].nunique()) if len(result) else 0})


def check_split_leakage(data: CurateData, column: str, config: LeakageConfig | None = None) -> CheckResult:
    """Near-duplicate pairs whose ``column`` values differ (train / test), most similar first.

    Each pair is listed once; the case in the smaller split is the one to review (``id``).
    """
    cfg = config or LeakageConfig()
    if column not in data.metadata.columns:
        raise ValueError(f"no split column {column!r}; columns are: {', '.join(map(str, data.metadata.columns))}")
    split = data.metadata[column].fillna("").astype(str).to_numpy()
    thresholds: dict[str, float | int | str] = {"k": cfg.k, "min_cosine": cfg.min_cosine, "column": column}
    if data.count < 2:
        return CheckResult(SPLIT_NAME, SPLIT_TITLE, finish_table(pd.DataFrame(), [], []),
                           thresholds, {"pairs": 0})
    sims, neigh = self_knn(data.image_index, data.image_vectors, cfg.k)
    qi, hi = np.nonzero((sims >= cfg.min_cosine) & (neigh >= 0))
    a, b, cos = qi.astype(np.int64), neigh[qi, hi].astype(np.int64), sims[qi, hi].astype(np.float64)
    cross = split[a] != split[b]
    a, b, cos = a[cross], b[cross], cos[cross]
    size = pd.Series(split).value_counts()
    # review the case of the smaller split (ties: the lower row), list each unordered pair once
    a_small = size.reindex(split[a]).to_numpy() < size.reindex(split[b]).to_numpy()
    tie = size.reindex(split[a]).to_numpy() == size.reindex(split[b]).to_numpy()
    first = np.where(a_small | (tie & (a < b)), a, b)
    second = np.where(first == a, b, a)
    pairs = pd.DataFrame({"a": first, "b": second, "cos": cos}).drop_duplicates(["a", "b"])
    ra, rb = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    table = _pairs_table(data, ra, data, rb, pairs["cos"].to_numpy(),
                         {"split": split[ra], "other_split": split[rb]})
    result = finish_table(table, ["severity"], [False])
    return CheckResult(SPLIT_NAME, SPLIT_TITLE, result, thresholds,
                       {"pairs": int(len(result)), "cases": int(len(set(ra) | set(rb)))})


def _run_split(data: CurateData, settings: LeakageConfig, inputs: CheckInputs) -> CheckResult:
    return check_split_leakage(data, str(inputs.split_col), settings)


def _run_bundles(data: CurateData, settings: LeakageConfig, inputs: CheckInputs) -> CheckResult:
    if inputs.other is None:
        raise ValueError("the cross-bundle leakage check needs a second bundle")
    return check_cross_bundle(data, inputs.other, settings)


SPLIT_SPEC = CheckSpec(
    name=SPLIT_NAME, title=SPLIT_TITLE, looks_for="near-duplicates across splits",
    help="near-duplicate image pairs whose split values differ; the case of the smaller split is the one to review",
    columns=("other_id", "split", "other_split", "cosine", "report_cosine"), settings=LeakageConfig,
    run=_run_split, needs=frozenset({Need.SPLIT_COLUMN}), tunables=(Tunable("dup_threshold", "min_cosine"),),
    pair_caption="other split",
    terms=(
        ('cosine',
         'image cosine of the pair (1 = the same image vector)'),
        ('report_cosine',
         'cosine of the two reports (1 = the same text)'),
        ('other_id',
         'the case this one nearly duplicates'),
        ('k',
         'how many nearest images are searched per case (only these are looked at)'),
        ('min_cosine',
         'pairs at or above this image cosine are near-duplicates'),
        ('column',
         'the split column compared'),
    ))
BUNDLES_SPEC = CheckSpec(
    name=BUNDLES_NAME, title="Near-duplicates in another bundle", looks_for="near-duplicates in another bundle",
    help="near-duplicate image pairs between this bundle and a second one (e.g. test against train)",
    columns=("other_id", "other_bundle", "cosine"), settings=LeakageConfig, run=_run_bundles,
    needs=frozenset({Need.OTHER_BUNDLE}), tunables=(Tunable("dup_threshold", "min_cosine"),))
register(SPLIT_SPEC)
register(BUNDLES_SPEC)

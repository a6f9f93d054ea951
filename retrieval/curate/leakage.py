"""Leakage and overlap: near-duplicate image pairs across two bundles (train vs test), or within one bundle across
the values of a split column.

A pair is found by any of three signals, so that a copy is found whatever model built the bundle:
- ``vector``: the model's image vectors, each item searched once for its ``k`` nearest (O(N k)), cosine >=
  ``min_cosine``;
- ``hash``: the perceptual hashes of the thumbnails (model-free, :mod:`retrieval.inputs.image_hash`), each item's
  ``k`` nearest by Hamming distance, at most ``max_hash_distance`` bits apart;
- ``report``: the same report text after :func:`report_key` (case, punctuation and spacing ignored), for texts of at
  least ``min_report_chars`` characters that at most ``max_report_group`` items share (a sentence every normal study
  carries is not evidence of a copy).
Each pair lists ``found_by`` (the signals, ``+``-joined), ``signals`` (how many), the image ``cosine``, the
``hash_distance`` (-1 where a side has no hash), ``same_report`` and the ``report_cosine`` (NaN without reports).
Pairs found by more signals rank first, then by cosine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import faiss
import numpy as np
import pandas as pd

from cxr_explorer.retrieval.curate.base import (
    CHUNK,
    CheckResult,
    CurateData,
    evidence_json,
    finish_table,
    knn,
    self_knn,
)
from cxr_explorer.retrieval.curate.registry import CheckInputs, CheckSpec, Need, Tunable, register
from cxr_explorer.retrieval.inputs.image_hash import HASH_BYTES, hamming, has_hash

SPLIT_NAME, SPLIT_TITLE = "leakage_split", "Leakage across splits"
BUNDLES_NAME = "leakage_bundles"


@dataclass(frozen=True)
class LeakageConfig:
    """``k`` neighbours searched per item; pairs at cosine >= ``min_cosine`` are duplicates."""

    k: int = 5
    min_cosine: float = 0.95
    max_hash_distance: int = 40  # of 256 bits; see benchmarks/README.md "Leakage signals" for the planted copies
    min_report_chars: int = 20
    max_report_group: int = 3


SIGNALS = ("vector", "hash", "report")
"""The ways a pair is found, in the order ``found_by`` lists them."""
_NOT_WORD = re.compile(r"[\W_]+")


def report_key(text: object) -> str:
    """The report text as compared for ``same_report``: case-folded, every run of punctuation and spacing one space."""
    return _NOT_WORD.sub(" ", str(text or "")).casefold().strip()


def _keys(data: CurateData) -> np.ndarray:
    """[N] report key of each item ("" without a report)."""
    if "report" not in data.metadata.columns:
        return np.full(data.count, "", dtype=object)
    return np.array([report_key(t) for t in data.metadata["report"].fillna("")], dtype=object)


def _hash_pairs(a: CurateData, b: CurateData, k: int, max_distance: int, same: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rows (i in ``a``, j in ``b``) whose hashes are at most ``max_distance`` bits apart, among each ``a`` item's
    ``k`` nearest hashes in ``b`` (itself excluded when ``same``); empty where either side has no hashes."""
    if a.image_hashes is None or b.image_hashes is None or not len(a.image_hashes) or not len(b.image_hashes):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = faiss.IndexBinaryFlat(HASH_BYTES * 8)
    index.add(np.ascontiguousarray(b.image_hashes, dtype=np.uint8))
    kk = min(k + int(same), len(b.image_hashes))
    rows_a, rows_b = [], []
    for start in range(0, len(a.image_hashes), CHUNK):
        query = np.ascontiguousarray(a.image_hashes[start:start + CHUNK], dtype=np.uint8)
        dist, labels = index.search(query, kk)
        qi, hi = np.nonzero((dist <= max_distance) & (labels >= 0))
        rows_a.append(qi.astype(np.int64) + start)
        rows_b.append(labels[qi, hi].astype(np.int64))
    i, j = np.concatenate(rows_a), np.concatenate(rows_b)
    keep = has_hash(a.image_hashes[i]) & has_hash(b.image_hashes[j]) & ((i != j) if same else True)
    return i[keep], j[keep]


def _report_pairs(a: CurateData, b: CurateData, cfg: LeakageConfig, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows (i in ``a``, j in ``b``) with the same :func:`report_key`, for keys long and rare enough (see module)."""
    ka, kb = _keys(a), (_keys(a) if same else _keys(b))
    counts = pd.Series(np.concatenate([ka, kb] if not same else [ka])).value_counts()
    usable = {key for key, n in counts.items() if len(key) >= cfg.min_report_chars and n <= cfg.max_report_group}
    left = pd.DataFrame({"key": ka, "i": np.arange(len(ka))})
    right = pd.DataFrame({"key": kb, "j": np.arange(len(kb))})
    joined = left[left["key"].isin(usable)].merge(right[right["key"].isin(usable)], on="key")
    if same:
        joined = joined[joined["i"] != joined["j"]]
    return joined["i"].to_numpy(np.int64), joined["j"].to_numpy(np.int64)


def _candidates(a: CurateData, b: CurateData, cfg: LeakageConfig, same: bool) -> pd.DataFrame:
    """Every (a, b, by) a signal found; ``same``: ``b`` is ``a`` (self-matches dropped)."""
    if same:
        sims, labels = self_knn(a.image_index, a.image_vectors, cfg.k)
    else:
        sims, labels = knn(b.image_index, a.image_vectors, cfg.k)
    qi, hi = np.nonzero((sims >= cfg.min_cosine) & (labels >= 0))
    found = [("vector", qi.astype(np.int64), labels[qi, hi].astype(np.int64)),
             ("hash", *_hash_pairs(a, b, cfg.k, cfg.max_hash_distance, same)),
             ("report", *_report_pairs(a, b, cfg, same))]
    return pd.concat([pd.DataFrame({"a": i, "b": j, "by": by}) for by, i, j in found], ignore_index=True)


def _merge_signals(cand: pd.DataFrame) -> pd.DataFrame:
    """One row per (a, b) with ``found_by`` (signals in :data:`SIGNALS` order, ``+``-joined) and ``signals``."""
    if cand.empty:
        return pd.DataFrame({"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64), "found_by": [], "signals": []})
    grouped = cand.groupby(["a", "b"], sort=True)["by"].agg(lambda s: "+".join(x for x in SIGNALS if x in set(s)))
    out = grouped.reset_index().rename(columns={"by": "found_by"})
    out["signals"] = out["found_by"].str.count(r"\+") + 1
    return out


def _pair_evidence(a: CurateData, rows_a: np.ndarray, b: CurateData, rows_b: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """``cosine``, ``hash_distance`` (-1 without hashes) and ``same_report`` of each pair (rows_a[i], rows_b[i])."""
    cos = np.einsum("nd,nd->n", np.asarray(a.image_vectors[rows_a], dtype=np.float32),
                    np.asarray(b.image_vectors[rows_b], dtype=np.float32)).astype(np.float64)
    dist = np.full(len(rows_a), -1, dtype=np.int64)
    if a.image_hashes is not None and b.image_hashes is not None and len(rows_a):
        ha, hb = a.image_hashes[rows_a], b.image_hashes[rows_b]
        ok = has_hash(ha) & has_hash(hb)
        dist[ok] = hamming(ha[ok], hb[ok])
    ka, kb = _keys(a)[rows_a], _keys(b)[rows_b]
    same = np.array([x != "" and x == y for x, y in zip(ka, kb, strict=True)], dtype=bool)
    return {"cosine": cos, "hash_distance": dist, "same_report": same}


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


def _pairs_table(a: CurateData, rows_a: np.ndarray, b: CurateData, rows_b: np.ndarray, found: pd.DataFrame,
                 extra: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per pair: the ``a`` case is the one a curator reviews (id/row), the other is evidence."""
    rep = _report_cosine(a, rows_a, b, rows_b)
    ev = _pair_evidence(a, rows_a, b, rows_b)
    return pd.DataFrame({
        "id": a.ids[rows_a], "row": rows_a, "severity": ev["cosine"], "flagged": np.ones(len(rows_a), dtype=bool),
        "evidence": [evidence_json({"other_bundle": b.name, "other_id": str(b.ids[j]), "found_by": f})
                     for j, f in zip(rows_b, found["found_by"], strict=True)],
        "other_id": b.ids[rows_b], "other_row": rows_b, "other_bundle": [b.name] * len(rows_b),
        "found_by": found["found_by"].to_numpy(), "signals": found["signals"].to_numpy(np.int64), **ev,
        "report_cosine": rep, **extra,
    })


def _thresholds(cfg: LeakageConfig) -> dict[str, float | int | str]:
    return {"k": cfg.k, "min_cosine": cfg.min_cosine, "max_hash_distance": cfg.max_hash_distance,
            "min_report_chars": cfg.min_report_chars, "max_report_group": cfg.max_report_group}


def _found_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many listed pairs each signal found (a pair may count for several)."""
    by = table["found_by"].astype(str) if len(table) else pd.Series([], dtype=str)
    return {f"by_{s}": int(by.str.split("+").map(lambda xs, s=s: s in xs).sum()) for s in SIGNALS}


def check_cross_bundle(data: CurateData, other: CurateData, config: LeakageConfig | None = None) -> CheckResult:
    """Near-duplicate pairs between ``data`` (e.g. test) and ``other`` (e.g. train), most signals first."""
    cfg = config or LeakageConfig()
    found = _merge_signals(_candidates(data, other, cfg, same=False))
    table = _pairs_table(data, found["a"].to_numpy(np.int64), other, found["b"].to_numpy(np.int64), found, {})
    result = finish_table(table, ["signals", "severity"], [False, False])
    return CheckResult(BUNDLES_NAME, f"Near-duplicates in {other.name}", result,
                       {**_thresholds(cfg), "other": other.name},
                       {"pairs": int(len(result)), "cases": int(result["id"].nunique()) if len(result) else 0,
                        "other_cases": int(result["other_id"].nunique()) if len(result) else 0,
                        **_found_counts(result)})


def check_split_leakage(data: CurateData, column: str, config: LeakageConfig | None = None) -> CheckResult:
    """Near-duplicate pairs whose ``column`` values differ (train / test), most signals first, then most similar.

    Each pair is listed once; the case in the smaller split is the one to review (``id``).
    """
    cfg = config or LeakageConfig()
    if column not in data.metadata.columns:
        raise ValueError(f"no split column {column!r}; columns are: {', '.join(map(str, data.metadata.columns))}")
    split = data.metadata[column].fillna("").astype(str).to_numpy()
    thresholds: dict[str, float | int | str] = {**_thresholds(cfg), "column": column}
    if data.count < 2:
        return CheckResult(SPLIT_NAME, SPLIT_TITLE, finish_table(pd.DataFrame(), [], []),
                           thresholds, {"pairs": 0})
    cand = _candidates(data, data, cfg, same=True)
    a, b, by = cand["a"].to_numpy(np.int64), cand["b"].to_numpy(np.int64), cand["by"].to_numpy()
    cross = split[a] != split[b]
    a, b, by = a[cross], b[cross], by[cross]
    size = pd.Series(split).value_counts()
    # review the case of the smaller split (ties: the lower row), list each unordered pair once
    a_small = size.reindex(split[a]).to_numpy() < size.reindex(split[b]).to_numpy()
    tie = size.reindex(split[a]).to_numpy() == size.reindex(split[b]).to_numpy()
    first = np.where(a_small | (tie & (a < b)), a, b)
    second = np.where(first == a, b, a)
    found = _merge_signals(pd.DataFrame({"a": first, "b": second, "by": by}))
    ra, rb = found["a"].to_numpy(np.int64), found["b"].to_numpy(np.int64)
    table = _pairs_table(data, ra, data, rb, found, {"split": split[ra], "other_split": split[rb]})
    result = finish_table(table, ["signals", "severity"], [False, False])
    return CheckResult(SPLIT_NAME, SPLIT_TITLE, result, thresholds,
                       {"pairs": int(len(result)), "cases": int(len(set(ra) | set(rb))), **_found_counts(result)})


def _run_split(data: CurateData, settings: LeakageConfig, inputs: CheckInputs) -> CheckResult:
    return check_split_leakage(data, str(inputs.split_col), settings)


def _run_bundles(data: CurateData, settings: LeakageConfig, inputs: CheckInputs) -> CheckResult:
    if inputs.other is None:
        raise ValueError("the cross-bundle leakage check needs a second bundle")
    return check_cross_bundle(data, inputs.other, settings)


SPLIT_SPEC = CheckSpec(
    name=SPLIT_NAME, title=SPLIT_TITLE, looks_for="near-duplicates across splits",
    help="near-duplicate pairs whose split values differ, found by image vectors, perceptual hash or the same report "
         "text (found_by); the case of the smaller split is the one to review",
    columns=("other_id", "split", "other_split", "found_by", "cosine", "hash_distance", "same_report",
             "report_cosine"), settings=LeakageConfig,
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
    help="near-duplicate pairs between this bundle and a second one (e.g. test against train), found by image vectors, "
         "perceptual hash or the same report text (found_by)",
    columns=("other_id", "other_bundle", "found_by", "cosine", "hash_distance", "same_report"),
    settings=LeakageConfig, run=_run_bundles,
    needs=frozenset({Need.OTHER_BUNDLE}), tunables=(Tunable("dup_threshold", "min_cosine"),))
register(SPLIT_SPEC)
register(BUNDLES_SPEC)

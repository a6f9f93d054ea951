"""Zero-shot classification and retrieval metrics (numpy / scipy only; no scikit-learn dependency).

* :func:`accuracy`, :func:`f1_score` for binary labels (``1`` = positive class);
* :func:`auroc` via the Mann-Whitney rank statistic with average ranks for ties, which equals scikit-learn's
  ``roc_auc_score`` (trapezoidal ROC area: a tied positive/negative pair counts 1/2);
* :func:`recall_at_k` and :func:`precision_at_k_by_label` for ranked retrieval results.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Literal

import numpy as np
from scipy.stats import rankdata


def _binary(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    """Validate and return ``[n]`` labels in {0, 1} as a bool array."""
    arr = np.asarray(values).reshape(-1)
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0/1 (or False/True)")
    return arr.astype(bool)


def _pair(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two ``[n]`` bool arrays of equal, non-zero length."""
    truth, pred = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    if truth.shape != pred.shape or truth.size == 0:
        raise ValueError(f"y_true {truth.shape} and y_pred {pred.shape} must be non-empty and of equal length")
    return truth, pred


def accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Fraction of ``[n]`` binary predictions equal to the labels."""
    truth, pred = _pair(y_true, y_pred)
    return float(np.mean(truth == pred))


def f1_score(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Binary F1 of the positive class, ``2 TP / (2 TP + FP + FN)``; 0.0 when there is no positive anywhere.

    (scikit-learn also returns 0.0 there, with a warning.)
    """
    truth, pred = _pair(y_true, y_pred)
    tp = int(np.count_nonzero(truth & pred))
    denominator = 2 * tp + int(np.count_nonzero(truth != pred))
    return 2 * tp / denominator if denominator else 0.0


def predict_from_scores(scores: Sequence[float] | np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """``[n]`` int predictions ``score > threshold`` (e.g. zero-shot margins positive - negative > 0)."""
    return (np.asarray(scores, dtype=np.float64).reshape(-1) > threshold).astype(np.int64)


def auroc(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve of ``[n]`` scores for ``[n]`` binary labels, ties counted 1/2.

    ``AUC = (sum of positive ranks - P (P + 1) / 2) / (P N)`` with average ranks. Raises ``ValueError`` when only one
    class is present (as scikit-learn does) or when a score is NaN.
    """
    truth = _binary(y_true, "y_true")
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if truth.shape != values.shape:
        raise ValueError(f"y_true {truth.shape} and scores {values.shape} must have equal length")
    if np.isnan(values).any():
        raise ValueError("scores must not contain NaN")
    n_pos = int(np.count_nonzero(truth))
    n_neg = truth.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC is undefined when only one class is present in y_true")
    ranks = rankdata(values, method="average")
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def recall_at_k(
    ranked_ids: Sequence[Sequence[str]],
    relevant: Sequence[Collection[str]],
    k: int,
    mode: Literal["hit", "fraction"] = "hit",
) -> float:
    """Mean Recall@k over queries that have at least one relevant item.

    ``mode="hit"`` (the cross-modal retrieval convention, e.g. CLIP-style R@K): 1 if any relevant item is in the top
    k, else 0. ``mode="fraction"`` (classical IR recall): ``|relevant in top k| / |relevant|``. Queries whose relevant
    set is empty are skipped; NaN if none remain.

    :param ranked_ids: per query, item ids best first.
    :param relevant: per query, the set of relevant item ids.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(ranked_ids) != len(relevant):
        raise ValueError(f"{len(ranked_ids)} rankings but {len(relevant)} relevant sets")
    scores: list[float] = []
    for ranking, rel in zip(ranked_ids, relevant, strict=True):
        rel_set = set(rel)
        if not rel_set:
            continue
        found = len(rel_set.intersection(ranking[:k]))
        scores.append(float(found > 0) if mode == "hit" else found / len(rel_set))
    return float(np.mean(scores)) if scores else float("nan")


def precision_at_k_by_label(
    ranked_ids: Sequence[Sequence[str]],
    query_labels: Sequence[str],
    item_labels: Mapping[str, Collection[str]],
    k: int,
) -> dict[str, float]:
    """Mean Precision@k per query label (e.g. text query "pneumonia" -> images labelled pneumonia).

    Precision@k of one query = (items among its top k whose labels contain the query label) / k; a ranking shorter
    than k is padded with non-relevant items. Items missing from ``item_labels`` count as non-relevant. Queries that
    share a label are averaged.

    :param ranked_ids: per query, item ids best first.
    :param query_labels: per query, the label it searches for.
    :param item_labels: item id -> its labels.
    :return: label -> mean Precision@k, in first-seen label order.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(ranked_ids) != len(query_labels):
        raise ValueError(f"{len(ranked_ids)} rankings but {len(query_labels)} query labels")
    per_label: dict[str, list[float]] = {}
    for ranking, label in zip(ranked_ids, query_labels, strict=True):
        hits = sum(1 for item in ranking[:k] if label in item_labels.get(item, ()))
        per_label.setdefault(label, []).append(hits / k)
    return {label: float(np.mean(values)) for label, values in per_label.items()}

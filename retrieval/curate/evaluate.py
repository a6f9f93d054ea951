"""Planted-fault evaluation: how many of a known set of faulty cases a check ranks at the top and flags."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultScore:
    """``precision_at_k``: share of the ``k`` worst-ranked cases (k = number planted) that are planted;
    ``recall_at_2k``: share of the planted cases among the ``2k`` worst; ``flagged_recall`` / ``flagged_precision``:
    over the cases the check flagged."""

    planted: int
    k: int
    precision_at_k: float
    recall_at_2k: float
    flagged: int
    flagged_recall: float
    flagged_precision: float


def score_ranking(ranked: Sequence[str], flagged: Collection[str], planted: Collection[str]) -> FaultScore:
    """Score a worst-first list of ids (duplicates ignored after their first place) against the planted ids."""
    truth = set(planted)
    order = list(dict.fromkeys(ranked))
    k = len(truth)
    if k == 0:
        return FaultScore(0, 0, 0.0, 0.0, len(set(flagged)), 0.0, 0.0)
    top = set(order[:k])
    top2 = set(order[: 2 * k])
    flag = set(flagged)
    hit = len(flag & truth)
    return FaultScore(planted=k, k=k, precision_at_k=len(top & truth) / k, recall_at_2k=len(top2 & truth) / k,
                      flagged=len(flag), flagged_recall=hit / k,
                      flagged_precision=hit / len(flag) if flag else 0.0)

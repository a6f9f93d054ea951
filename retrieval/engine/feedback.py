"""Relevance feedback by Rocchio's rule on the stored embeddings.

``q' = normalise(alpha * q + beta * mean(relevant) - gamma * mean(not relevant))`` where ``q`` is the (composed)
query vector and the means are over the marked cases' stored vectors in the searched space (image vectors for the
images target, report vectors for reports, the mean of a case's sentence vectors for sentences).

Why Rocchio and not a small trained model: it needs no training (so no seed, no epochs, nothing to overfit on ten
marks), it is exactly reversible (the marks are the whole state: drop a mark and the previous ranking comes back,
which is what the browser's Back does with the marks kept in the URL), and it costs one mean and one renormalisation
per round whatever the bundle's size. Marks accumulate over rounds; each round recomputes ``q'`` from the original
query, never from the previous round's vector, so the order of the rounds does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from cxr_explorer.retrieval.engine.filters import QueryError

__all__ = ["ALPHA", "BETA", "GAMMA", "MARKED", "MAX_MARKS", "FeedbackError", "check_marks", "rocchio"]

ALPHA, BETA, GAMMA = 1.0, 0.75, 0.25
"""Rocchio's classic weights (query, relevant, not relevant): the query keeps the lead, negatives push gently."""
MAX_MARKS = 500
"""The most marks (relevant and not relevant together) one query may carry."""
Marked = Literal["pin", "hide", "rank"]
MARKED: tuple[Marked, ...] = ("pin", "hide", "rank")
"""What happens to the marked cases in the next ranking: ``pin`` puts the relevant ones first and hides the rest,
``hide`` hides every marked case (only new cases are shown), ``rank`` leaves them where the new query ranks them."""


class FeedbackError(QueryError):
    """Marks the user can fix: one case both relevant and not relevant, too many marks, an unknown mode."""


def check_marks(relevant: Sequence[str], not_relevant: Sequence[str], marked: str) -> tuple[list[str], list[str]]:
    """Validated marks (order kept, repeats dropped)."""
    if marked not in MARKED:
        raise FeedbackError(f"marked cases: choose from {', '.join(MARKED)}, got {marked!r}")
    rel = list(dict.fromkeys(str(i) for i in relevant))
    non = list(dict.fromkeys(str(i) for i in not_relevant))
    both = sorted(set(rel) & set(non))
    if both:
        raise FeedbackError(f"case {both[0]} is marked both relevant and not relevant")
    if len(rel) + len(non) > MAX_MARKS:
        raise FeedbackError(f"at most {MAX_MARKS} marks per query, got {len(rel) + len(non)}")
    return rel, non


def rocchio(query: np.ndarray, relevant: np.ndarray, not_relevant: np.ndarray, alpha: float = ALPHA,
            beta: float = BETA, gamma: float = GAMMA) -> np.ndarray:
    """The moved query [D] (L2-normalised) from ``query`` [D] and the marked vectors ``relevant`` [R, D] and
    ``not_relevant`` [N, D] (either may be empty); the query itself when the result would vanish."""
    moved = alpha * np.asarray(query, dtype=np.float32)
    if len(relevant):
        moved = moved + beta * np.asarray(relevant, dtype=np.float32).mean(axis=0)
    if len(not_relevant):
        moved = moved - gamma * np.asarray(not_relevant, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(moved))
    return np.asarray(query, dtype=np.float32) if not norm > 1e-6 else (moved / norm).astype(np.float32)

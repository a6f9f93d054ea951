"""Rank or filter a result set by a finding's zero-shot margin.

A finding is a pair of prompt sets: positive ("Findings consistent with pleural effusion", ...) and negative ("There
is no pleural effusion", ...). A case's margin is ``cos(v, P) - cos(v, N)`` where ``v`` is its stored image vector
and ``P``/``N`` the L2-normalised means of each set's unnormalised prompt embeddings, exactly as
:func:`retrieval.grounding.maps.zero_shot_margin` scores one image (hi-ml's prompt averaging). A margin is a
difference of cosines, never a probability: above 0 the positive prompts fit better.

``pneumonia`` uses the reference's prompt sets (:data:`retrieval.grounding.maps.POSITIVE_PNEUMONIA_PROMPTS`); any
other finding fills the same templates with its name; a user may pass their own sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cxr_explorer.retrieval.engine.filters import QueryError
from cxr_explorer.retrieval.grounding.maps import NEGATIVE_PNEUMONIA_PROMPTS, POSITIVE_PNEUMONIA_PROMPTS

__all__ = ["FindingRank", "finding_prompts", "margins"]

POSITIVE_TEMPLATES = ("Findings consistent with {}", "Findings suggesting {}", "This opacity can represent {}",
                      "Findings are most compatible with {}")
NEGATIVE_TEMPLATES = ("There is no {}", "No evidence of {}", "No evidence of acute {}", "No signs of {}")
MAX_FINDING = 200


@dataclass(frozen=True)
class FindingRank:
    """Rank (``sort=True``) and/or filter (``min_margin``) hits by the margin of ``finding``; ``positive`` and
    ``negative`` replace the templated prompt sets when given."""

    finding: str
    min_margin: float | None = None
    sort: bool = True
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()

    def prompts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The (positive, negative) prompt sets."""
        return finding_prompts(self.finding, self.positive, self.negative)


def finding_prompts(finding: str, positive: Sequence[str] = (), negative: Sequence[str] = ()
                    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The prompt sets of ``finding`` (the user's when given, the reference's for pneumonia, else the templates)."""
    name = " ".join(str(finding).split())
    if not name:
        raise QueryError("the finding to rank by is empty")
    if len(name) > MAX_FINDING:
        raise QueryError(f"the finding to rank by is longer than {MAX_FINDING} characters")
    if name.lower() == "pneumonia" and not positive and not negative:
        return POSITIVE_PNEUMONIA_PROMPTS, NEGATIVE_PNEUMONIA_PROMPTS
    pos = tuple(p for p in positive if p.strip()) or tuple(t.format(name) for t in POSITIVE_TEMPLATES)
    neg = tuple(p for p in negative if p.strip()) or tuple(t.format(name) for t in NEGATIVE_TEMPLATES)
    return pos, neg


def check_min_margin(value: float | None) -> float | None:
    """A minimum margin is a finite number in [-2, 2] (a difference of two cosines)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -2.0 <= float(value) <= 2.0:
        raise QueryError(f"minimum margin must be a number in [-2, 2] (a difference of cosines), got {value!r}")
    return float(value)


def margins(vectors: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Margins [M] of image vectors [M, D] against the positive and negative prompt-set vectors (each [D])."""
    v = np.asarray(vectors, dtype=np.float32)
    return (v @ np.asarray(positive, dtype=np.float32) - v @ np.asarray(negative, dtype=np.float32)).astype(np.float32)

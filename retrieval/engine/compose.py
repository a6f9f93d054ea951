"""Composed queries: several weighted parts (text, image, corpus case), positive or negative, in one ranking.

The scoring, stated once (docs/composed-queries.md shows it with examples):

1. Each part becomes one L2-normalised ``[D]`` vector ``e_i`` (a text phrase through the text encoder, an uploaded
   image through the image encoder, a corpus case by its stored image vector).
2. The positive parts make the query ``q = normalise(sum_i w_i * e_i)``; candidates are drawn from the index by ``q``.
3. Relevance feedback (:mod:`retrieval.engine.feedback`) may move ``q`` toward the cases marked relevant and away from
   those marked not relevant (Rocchio) before the search.
4. A candidate vector ``v`` scores ``base = v . q``. Each negative part ``j`` is scored ``s_j = v . e_j``; with no
   threshold it subtracts a penalty ``w_j * max(0, s_j)``; with a threshold ``t_j`` the candidate is dropped when
   ``s_j > t_j`` (a hard exclusion) and nothing is subtracted otherwise.
5. ``score = base - sum of penalties``; hits are the best ``k`` scores. Every hit carries each part's similarity and
   its contribution, and the dropped candidates that ranked above the last hit carry the part that dropped them, so
   a reader sees why a case was kept or dropped.

Candidates come from the index by ``q`` in a pool that grows (fourfold) until ``k`` survive or nothing is left, so
an exclusion never lets an excluded case through: every returned hit is checked against every part. Scores are
cosine similarities (and sums of them), never probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cxr_explorer.retrieval.engine.filters import QueryError
from cxr_explorer.retrieval.inputs.text_embedding import encoder_text

__all__ = ["MAX_PARTS", "ComposeError", "Dropped", "PartScore", "QueryPart", "check_parts", "combine", "part_scores"]

PartKind = Literal["text", "image", "id"]
KINDS: tuple[PartKind, ...] = ("text", "image", "id")
MAX_PARTS = 16
"""The most parts one composed query may have (each is one more vector per candidate to score)."""
MAX_WEIGHT = 100.0


class ComposeError(QueryError):
    """A composed query the user can fix: no positive part, a bad weight or threshold, contradictory parts."""


@dataclass(frozen=True)
class QueryPart:
    """One part of a composed query.

    :param kind: ``text`` (``value`` a phrase), ``image`` (``value`` a path or encoded bytes) or ``id`` (a case id).
    :param weight: a finite number in (0, 100]; positive parts are weighted in the sum, negative ones scale their
        penalty.
    :param negative: the part pushes hits away (penalty) or, with ``exclude_above``, drops them.
    :param exclude_above: for a negative part: drop a candidate whose cosine with this part exceeds it, in [-1, 1].
    """

    kind: PartKind
    value: str | bytes
    weight: float = 1.0
    negative: bool = False
    exclude_above: float | None = None

    @property
    def label(self) -> str:
        """How the part is shown: ``not text "pneumothorax" x0.5``."""
        value = f"{len(self.value)} bytes" if isinstance(self.value, bytes) else str(self.value)
        if len(value) > 60:
            value = value[:59] + "…"
        sign = "not " if self.negative else ""
        weight = "" if self.weight == 1.0 else f" x{self.weight:g}"
        return f'{sign}{self.kind} "{value}"{weight}'

    def key(self) -> tuple[str, str | bytes]:
        """What makes two parts the same query element (texts compared as the encoder reads them, lower-cased)."""
        if isinstance(self.value, str) and self.kind == "text":
            return self.kind, encoder_text(self.value).lower()
        return self.kind, self.value


@dataclass(frozen=True)
class PartScore:
    """One part's cosine with a hit (``similarity``) and what it added to the score (``contribution``: the weighted
    share of the positive query for positive parts, minus the penalty for negative ones)."""

    part: str
    similarity: float
    contribution: float
    negative: bool


@dataclass(frozen=True)
class Dropped:
    """A candidate removed by a negative part's threshold: which row and id, the part, its cosine and the threshold;
    ``base`` is the candidate's cosine with the positive query (where it would have ranked)."""

    row: int
    id: str
    base: float
    part: str
    similarity: float
    threshold: float


@dataclass(frozen=True)
class Scored:
    """Scores of a candidate pool [M]: ``base`` (cosine with ``q``), ``score`` (after penalties), ``sims`` [M, P] per
    part, ``excluded_by`` [M] (index of the first excluding part, -1 when kept)."""

    base: np.ndarray
    score: np.ndarray
    sims: np.ndarray
    excluded_by: np.ndarray
    parts: Sequence[QueryPart] = field(default_factory=tuple)


def _check_weight(part: QueryPart) -> None:
    w = part.weight
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(float(w)):
        raise ComposeError(f"weight of {part.label} must be a finite number, got {w!r}")
    if not 0.0 < float(w) <= MAX_WEIGHT:
        raise ComposeError(f"weight of {part.kind} part {_short(part)} must be above 0 and at most {MAX_WEIGHT:g}, "
                           f"got {w!r}")


def _short(part: QueryPart) -> str:
    return f"{len(part.value)} bytes" if isinstance(part.value, bytes) else repr(str(part.value)[:60])


def check_parts(parts: Sequence[QueryPart]) -> list[QueryPart]:
    """Validate a composed query: 1..MAX_PARTS parts, at least one positive, known kinds, non-empty values, weights
    in (0, 100], thresholds (negative parts only) in [-1, 1], no part both positive and negative."""
    parts = list(parts)
    if not parts:
        raise ComposeError("a composed query needs at least one part")
    if len(parts) > MAX_PARTS:
        raise ComposeError(f"a composed query may have at most {MAX_PARTS} parts, got {len(parts)}")
    for part in parts:
        if part.kind not in KINDS:
            raise ComposeError(f"unknown part kind {part.kind!r}; choose from {', '.join(KINDS)}")
        if not part.value or (isinstance(part.value, str) and not part.value.strip()):
            raise ComposeError(f"an empty {part.kind} part")
        _check_weight(part)
        if part.exclude_above is not None:
            t = part.exclude_above
            if not part.negative:
                raise ComposeError(f"exclude_above applies to negative parts, not to {part.label}")
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not -1.0 <= float(t) <= 1.0:
                raise ComposeError(f"exclusion threshold of {part.label} must be a cosine in [-1, 1], got {t!r}")
    if not any(not p.negative for p in parts):
        raise ComposeError("a composed query needs at least one positive part (negative parts only push hits away)")
    positive = {p.key() for p in parts if not p.negative}
    for part in parts:
        if part.negative and part.key() in positive:
            raise ComposeError(f"contradictory parts: {part.kind} {_short(part)} is both positive and negative")
    return parts


def combine(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``normalise(sum_i w_i * e_i)`` of L2-normalised [D] vectors; a ComposeError when they cancel out."""
    total = np.sum([float(w) * np.asarray(v, dtype=np.float32) for v, w in zip(vectors, weights, strict=True)],
                   axis=0)
    norm = float(np.linalg.norm(total))
    if not norm > 1e-6:
        raise ComposeError("the positive parts cancel each other out; change a weight or a part")
    return (total / norm).astype(np.float32)


def part_scores(candidates: np.ndarray, query: np.ndarray, part_vectors: np.ndarray,
                parts: Sequence[QueryPart]) -> Scored:
    """Score a pool of candidate vectors [M, D] against the positive query [D] and every part [P, D] (see the module
    docstring: penalties, exclusions)."""
    cand = np.asarray(candidates, dtype=np.float32)
    base = cand @ query
    sims = cand @ np.asarray(part_vectors, dtype=np.float32).T if len(parts) else np.zeros((len(cand), 0), np.float32)
    score = base.copy()
    excluded_by = np.full(len(cand), -1, dtype=np.int64)
    for j, part in enumerate(parts):
        if not part.negative:
            continue
        if part.exclude_above is None:
            score -= float(part.weight) * np.maximum(0.0, sims[:, j])
        else:
            hit = (sims[:, j] > float(part.exclude_above)) & (excluded_by < 0)
            excluded_by[hit] = j
    return Scored(base, score, sims, excluded_by, tuple(parts))


def explain(scored: Scored, i: int, query_parts_weight: float) -> tuple[PartScore, ...]:
    """Per-part scores of candidate ``i``: a positive part contributes ``w_i * s_i / |sum w e|`` (its share of the
    base cosine; shares add up to ``base``), a penalised negative part ``-w_j * max(0, s_j)``, an excluding part
    nothing (it drops or keeps)."""
    out = []
    for j, part in enumerate(scored.parts):
        s = float(scored.sims[i, j])
        if not part.negative:
            contribution = float(part.weight) * s / query_parts_weight
        elif part.exclude_above is None:
            contribution = -float(part.weight) * max(0.0, s)
        else:
            contribution = 0.0
        out.append(PartScore(part=part.label, similarity=s, contribution=contribution, negative=part.negative))
    return tuple(out)

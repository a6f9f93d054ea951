"""Report-image mismatch: does each case's own report match its image better than the other reports do?

For every case with a report: the cosine of its image with its own report, the rank of the own report among the
image's nearest reports (image -> report) and of the own image among the report's nearest images (report ->
image), and the margin of the own pair over the best other one in each direction. A swapped or wrong report has a
negative margin in both directions. Ranks beyond ``k`` are reported as ``k + 1`` with ``rank_capped`` set: only
the ``k`` nearest are searched, so the check is O(N k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.curate.base import CheckResult, CurateData, evidence_json, finish_table, knn
from cxr_explorer.retrieval.curate.registry import CheckInputs, CheckSpec, Tunable, register

NAME = "mismatch"
TITLE = "Report-image mismatch"
TIE = 1e-6
"""Scores within TIE of the own pair's count as ties (identical report texts), not as better matches."""


@dataclass(frozen=True)
class MismatchConfig:
    """``k`` neighbours searched per direction; a case is flagged when its own report ranks below ``max_rank``
    (image -> report) AND its own image below ``max_rank`` (report -> image)."""

    k: int = 10
    max_rank: int = 5


def _direction(scores: np.ndarray, labels: np.ndarray, own: np.ndarray, own_score: np.ndarray,
               same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank of the own target, capped flag, margin over the best other, and the best other's position.

    ``scores``/``labels`` [n, k] from a kNN search; ``own`` [n] the own target's position; ``same`` [n, k] marks
    hits that are the own target (or share it). Returns rank [n], capped [n], margin [n], best_other [n] (-1: none).
    """
    n, k = scores.shape
    better = (scores > own_score[:, None] + TIE) & ~same & (labels >= 0)
    rank = 1 + better.sum(axis=1)
    found = same.any(axis=1)
    capped = ~found  # every searched hit scored at least as high as the own target
    rank = np.where(capped, k + 1, rank)
    other = np.where(~same & (labels >= 0), scores, -np.inf)
    best_i = np.argmax(other, axis=1)
    best_score = other[np.arange(n), best_i]
    has_other = np.isfinite(best_score)
    margin = np.where(has_other, own_score - np.where(has_other, best_score, 0.0), np.inf)
    best_pos = np.where(has_other, labels[np.arange(n), best_i], -1)
    return rank.astype(np.int64), np.asarray(capped, dtype=bool), margin.astype(np.float64), best_pos.astype(np.int64)


def check_mismatch(data: CurateData, config: MismatchConfig | None = None) -> CheckResult:
    """Rank and margin of every case's own report (see the module docstring); worst (lowest margin) first."""
    cfg = config or MismatchConfig()
    thresholds: dict[str, float | int | str] = {"k": cfg.k, "max_rank": cfg.max_rank}
    if data.report_index is None or len(data.report_rows) < 2:
        return CheckResult(NAME, TITLE, finish_table(pd.DataFrame(), [], []), thresholds,
                           {"cases_with_report": int(len(data.report_rows)), "note": "fewer than 2 reports"})
    rows = np.asarray(data.report_rows, dtype=np.int64)
    img = np.asarray(data.image_vectors[rows], dtype=np.float32)
    rep = np.asarray(data.report_vectors, dtype=np.float32)
    own_score = np.einsum("nd,nd->n", img, rep).astype(np.float64)
    # image -> report: positions are report positions; "same" = the own report position
    s_ir, l_ir = knn(data.report_index, img, cfg.k)
    own_pos = np.arange(len(rows), dtype=np.int64)
    rank_ir, cap_ir, margin_ir, best_ir = _direction(s_ir, l_ir, own_pos, own_score, l_ir == own_pos[:, None])
    # report -> image: positions are item rows; "same" = the own image row
    s_ri, l_ri = knn(data.image_index, rep, cfg.k)
    rank_ri, cap_ri, margin_ri, best_ri = _direction(s_ri, l_ri, rows, own_score, l_ri == rows[:, None])
    margin = np.minimum(margin_ir, margin_ri)
    ids = data.ids
    best_report_row = np.where(best_ir >= 0, rows[np.maximum(best_ir, 0)], -1)
    evidence = [evidence_json({"best_other_report_of": str(ids[a]) if a >= 0 else None,
                               "best_other_image": str(ids[b]) if b >= 0 else None})
                for a, b in zip(best_report_row, best_ri, strict=True)]
    frame = pd.DataFrame({
        "id": ids[rows], "row": rows, "severity": -np.where(np.isfinite(margin), margin, 0.0),
        "flagged": (rank_ir > cfg.max_rank) & (rank_ri > cfg.max_rank), "evidence": evidence,
        "own_cosine": own_score, "rank_image_to_report": rank_ir, "rank_report_to_image": rank_ri,
        "rank_capped": cap_ir | cap_ri, "margin_image_to_report": margin_ir, "margin_report_to_image": margin_ri,
        "margin": margin,
    })
    table = finish_table(frame, ["severity"], [False])
    return CheckResult(NAME, TITLE, table, thresholds,
                       {"cases_with_report": int(len(rows)), "flagged": int(frame["flagged"].sum())})


def _run(data: CurateData, settings: MismatchConfig, inputs: CheckInputs) -> CheckResult:
    return check_mismatch(data, settings)


SPEC = CheckSpec(
    name=NAME, title=TITLE, looks_for="swapped or wrong reports",
    help="swapped or wrong reports: the own report's rank among the image's nearest reports and back, and the "
    "margin over the best other",
    columns=("own_cosine", "rank_image_to_report", "rank_report_to_image", "margin"), settings=MismatchConfig,
    run=_run, tunables=(Tunable("k", "k"),), shows_report=True,
    terms=(
        ('own_cosine',
         "cosine between the case's image and its own report"),
        ('rank_image_to_report',
         "where the case's own report ranks among the reports nearest its image (1 = first)"),
        ('rank_report_to_image',
         "where the case's own image ranks among the images nearest its report (1 = first)"),
        ('margin',
         "own cosine minus the best other case's cosine (negative: another report fits better)"),
        ('k',
         'how many nearest reports or images are searched per case (only these are looked at)'),
        ('max_rank',
         'flagged when the own report AND the own image both rank below this'),
    ))
register(SPEC)

"""Label issues: cases whose labels disagree with their image neighbourhood (multi-label aware).

Each label is a binary task (cleanlab's multi-label treatment). From the ``k`` nearest other images, ``p[l]`` is the
(cosine-weighted, see :func:`neighbour_label_share`) share of neighbours carrying label ``l``. The self-confidence
of a case is the lowest, over all labels, of ``p[l]`` for a label it has and ``1 - p[l]`` for one it lacks; the
normalised margin is ``(1 + min over given labels of (p[given] - max p[not given])) / 2`` (below 0.5: the
neighbours prefer a label the case does not have). With
prompts, the zero-shot margin (cosine with the label's positive prompt minus its negative prompt) of each given
label is added as evidence; a negative one means the model reads the image as not showing the finding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.curate.base import CheckResult, CurateData, evidence_json, finish_table, self_knn
from cxr_explorer.retrieval.curate.registry import CheckInputs, CheckSpec, Need, Tunable, register

SEPARATORS = re.compile(r"[|;]")
"""Multi-label cells are split on ``|`` (the bundle's filter separator) or ``;`` (covid-chestxray)."""
NO_LABEL = "(none)"
"""The label given to an empty cell, so unlabelled cases take part like any class."""
EVIDENCE_NEIGHBOURS = 5
NAME = "labels"
TITLE = "Label issues"


@dataclass(frozen=True)
class LabelConfig:
    """``k`` neighbours; flagged when the normalised margin is below ``max_margin`` (a label it lacks beats one it
    has) or the self-confidence below ``min_confidence`` (e.g. a label nearly all neighbours carry is missing);
    ``prior_weight`` pulls the shares of cases with far neighbours towards the label frequencies."""

    k: int = 10
    max_margin: float = 0.5
    min_confidence: float = 0.1
    prior_weight: float = 1.0


def split_labels(cell: object) -> frozenset[str]:
    """The labels of one cell (``a|b``, ``a;b``); an empty or missing cell is ``{NO_LABEL}``."""
    text = "" if cell is None or (isinstance(cell, float) and np.isnan(cell)) else str(cell)
    labels = frozenset(p.strip() for p in SEPARATORS.split(text) if p.strip())
    return labels or frozenset({NO_LABEL})


def label_matrix(cells: pd.Series) -> tuple[np.ndarray, list[str]]:
    """[N, L] bool label indicators and the sorted label names."""
    sets = [split_labels(c) for c in cells]
    names = sorted(set().union(*sets)) if sets else []
    col = {n: j for j, n in enumerate(names)}
    y = np.zeros((len(sets), len(names)), dtype=bool)
    for i, s in enumerate(sets):
        y[i, [col[n] for n in s]] = True
    return y, names


def neighbour_label_share(y: np.ndarray, neighbours: np.ndarray, sims: np.ndarray, prior_weight: float = 1.0,
                          chunk: int = 4096) -> np.ndarray:
    """[N, L] similarity-weighted share of each case's neighbours ([N, k] rows, cosines [N, k]) carrying each label.

    ``p = (sum_j w_j y_j + prior_weight * prior) / (sum_j w_j + prior_weight)`` with ``w = max(cosine, 0)`` and the
    label frequencies as prior: a case whose neighbours are far (an outlier) gets shares near the prior instead of
    confident ones. Chunked: N x k x L floats at most ``chunk`` rows at a time.
    """
    prior = y.mean(axis=0).astype(np.float32)
    out = np.empty(y.shape, dtype=np.float32)
    for start in range(0, len(neighbours), chunk):
        w = np.maximum(sims[start:start + chunk], 0.0).astype(np.float32)
        votes = np.einsum("nk,nkl->nl", w, y[neighbours[start:start + chunk]].astype(np.float32))
        out[start:start + chunk] = (votes + prior_weight * prior) / (w.sum(axis=1, keepdims=True) + prior_weight)
    return out


def confidence_and_margin(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Self-confidence [N], normalised margin [N] and the worst label index [N] from labels and shares [N, L]."""
    per_label = np.where(y, p, 1.0 - p)
    worst = np.argmin(per_label, axis=1)
    confidence = per_label[np.arange(len(y)), worst]
    given_min = np.where(y, p, np.inf).min(axis=1)
    absent_max = np.where(~y, p, -np.inf).max(axis=1)
    margin = np.where(np.isfinite(absent_max), given_min - absent_max, given_min)
    return confidence.astype(np.float64), ((1.0 + margin) / 2.0).astype(np.float64), worst


def zero_shot_given(y: np.ndarray, names: list[str], image_vectors: np.ndarray,
                    prompts: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, list[str]]:
    """Lowest zero-shot margin over each case's given labels that have prompts ([N], NaN when none) and its label.

    ``prompts[label] = (positive [D], negative [D])`` L2-normalised prompt embeddings.
    """
    n = len(y)
    best = np.full(n, np.inf)
    which = [""] * n
    for label, (pos, neg) in prompts.items():
        if label not in names:
            continue
        j = names.index(label)
        margin = np.asarray(image_vectors, dtype=np.float32) @ (np.asarray(pos) - np.asarray(neg)).astype(np.float32)
        lower = y[:, j] & (margin < best)
        best = np.where(lower, margin, best)
        for i in np.flatnonzero(lower):
            which[int(i)] = label
    return np.where(np.isfinite(best), best, np.nan), which


def check_labels(data: CurateData, column: str, config: LabelConfig | None = None,
                 prompts: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> CheckResult:
    """Label issues in ``column`` (see the module docstring), worst first: severity = 1 - min(normalised margin,
    self-confidence), ties by lower self-confidence."""
    cfg = config or LabelConfig()
    if column not in data.metadata.columns:
        raise ValueError(f"no label column {column!r}; columns are: {', '.join(map(str, data.metadata.columns))}")
    y, names = label_matrix(data.metadata[column])
    thresholds: dict[str, float | int | str] = {"k": cfg.k, "max_margin": cfg.max_margin,
                                                "min_confidence": cfg.min_confidence, "column": column}
    if data.count < 2 or len(names) < 2:
        return CheckResult(NAME, TITLE, finish_table(pd.DataFrame(), [], []), thresholds,
                           {"labels": names, "note": "needs at least 2 cases and 2 labels"})
    sims, neigh = self_knn(data.image_index, data.image_vectors, cfg.k)
    p = neighbour_label_share(y, neigh, sims, cfg.prior_weight)
    cells = data.metadata[column].fillna("").astype(str).to_numpy()
    confidence, margin, worst = confidence_and_margin(y, p)
    zs, zs_label = (zero_shot_given(y, names, data.image_vectors, prompts) if prompts
                    else (np.full(len(y), np.nan), [""] * len(y)))
    frame = pd.DataFrame({
        "id": data.ids, "row": np.arange(data.count), "severity": 1.0 - np.minimum(margin, confidence),
        "flagged": (margin < cfg.max_margin) | (confidence < cfg.min_confidence),
        "evidence": [_evidence(i, y, p, names, sims, neigh, data.ids, cells) for i in range(data.count)],
        "labels": ["|".join(sorted(n for n, h in zip(names, y[i], strict=True) if h)) for i in range(data.count)],
        "self_confidence": confidence, "normalised_margin": margin,
        "worst_label": [names[j] for j in worst], "worst_label_given": y[np.arange(len(y)), worst],
        "suggested": ["|".join(n for n, v in zip(names, p[i], strict=True) if v >= 0.5) for i in range(data.count)],
        "zero_shot_margin": zs, "zero_shot_label": zs_label,
    })
    table = finish_table(frame, ["severity", "self_confidence"], [False, True])
    return CheckResult(NAME, TITLE, table, thresholds,
                       {"labels": names, "flagged": int(frame["flagged"].sum()),
                        "with_prompts": sorted(prompts) if prompts else []})


def _evidence(i: int, y: np.ndarray, p: np.ndarray, names: list[str], sims: np.ndarray, neigh: np.ndarray,
              ids: np.ndarray, cells: np.ndarray) -> str:
    """The nearest neighbours (id, labels, cosine) and the neighbour share of each label that is given or common."""
    shown = {names[j]: round(float(p[i, j]), 3) for j in range(len(names)) if y[i, j] or p[i, j] >= 0.3}
    near = [{"id": str(ids[j]), "labels": str(cells[j]), "cosine": round(float(s), 4)}
            for s, j in zip(sims[i, :EVIDENCE_NEIGHBOURS], neigh[i, :EVIDENCE_NEIGHBOURS], strict=True) if j >= 0]
    return evidence_json({"neighbour_share": shown, "neighbours": near})


def _run(data: CurateData, settings: LabelConfig, inputs: CheckInputs) -> CheckResult:
    return check_labels(data, str(inputs.label_col), settings, inputs.prompts)


SPEC = CheckSpec(
    name=NAME, title=TITLE, looks_for="label issues",
    help="labels that disagree with the image neighbourhood (multi-label; with prompts, the zero-shot margin of "
    "each given label)",
    columns=("labels", "suggested", "self_confidence", "normalised_margin", "zero_shot_margin"), settings=LabelConfig,
    run=_run, needs=frozenset({Need.LABEL_COLUMN}), tunables=(Tunable("k", "k"),),
    terms=(
        ('self_confidence',
         "lowest agreement of the neighbours with the case's labels (0 = none agree, 1 = all do)"),
        ('normalised_margin',
         'below 0.5: the neighbours prefer a label the case lacks over one it has'),
        ('suggested',
         'labels most of the neighbours carry'),
        ('zero_shot_margin',
         "cosine with the label's positive prompt minus the negative one (negative: not seen)"),
        ('k',
         'how many nearest images are searched per case (only these are looked at)'),
        ('max_margin',
         'flagged when the normalised margin is below this'),
        ('min_confidence',
         'or when the self-confidence is below this'),
        ('prior_weight',
         'pulls the neighbour shares of isolated cases towards the label frequencies'),
    ))
register(SPEC)

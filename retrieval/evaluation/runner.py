"""Evaluation runs over a model or a bundle: phrase grounding (CNR / mIoU), zero-shot classification, retrieval.

The metric maths lives in :mod:`retrieval.evaluation.metrics` and :mod:`retrieval.evaluation.classification`; this
module only gathers embeddings and maps. Maps are computed exactly as the reference's
``get_similarity_map_from_raw_data``: patch similarity, Gaussian smoothing on the grid, upsampling to the centre crop
of the ORIGINAL image (NaN outside), with the interpolation recorded in the result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxr_explorer.retrieval.evaluation import classification, metrics
from cxr_explorer.retrieval.evaluation.datasets import GroundingCase, LabelledImage, scale_boxes
from cxr_explorer.retrieval.grounding import maps as grounding

log = logging.getLogger(__name__)


class EmbeddingSource:
    """Image and text embeddings from a model, preferring a bundle's stored embeddings when an engine is given.

    A case is found in the bundle by item id, then by absolute image path; otherwise its image is decoded and
    encoded with the model (one forward per image, the last one cached for its other phrases).
    """

    def __init__(self, model: Any, engine: Any | None = None) -> None:
        self.model = model
        self.engine = engine
        self._texts: dict[str, torch.Tensor] = {}
        self._last: tuple[str, tuple[np.ndarray, np.ndarray, int, int]] | None = None
        self._paths: dict[str, int] = {}
        if engine is not None:
            meta = engine.cases.metadata
            self._paths = {str(Path(p).resolve()): i for i, p in enumerate(meta["image_abspath"])}
        self.from_bundle = 0
        self.forwards = 0

    def _row(self, key: str, image: Path) -> int | None:
        if self.engine is None:
            return None
        from cxr_explorer.retrieval.bundle.reader import BundleError

        try:
            return int(self.engine.row_of(key))
        except BundleError:  # an unknown id: look the image up by path, else it is not in the bundle
            return self._paths.get(str(Path(image).resolve()))

    def image(self, key: str, image: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(patches [h, w, D] float32, global [D] float32, width, height) of one image."""
        row = self._row(key, image)
        if row is not None and self.engine is not None:
            self.from_bundle += 1
            cases = self.engine.cases
            width, height = cases.original_size(row)
            return cases.stored_patches([row])[0], np.asarray(cases.image_vector(row), np.float32), width, height
        if self._last is not None and self._last[0] == str(image):
            return self._last[1]
        from cxr_explorer.retrieval.inputs.images import load_image

        loaded = load_image(image)
        out = self.model.encode_images(self.model.preprocess(loaded.image).unsqueeze(0))
        self.forwards += 1
        result = (out.patches[0].numpy(), out.global_emb[0].numpy(), loaded.width, loaded.height)
        self._last = (str(image), result)
        return result

    def text(self, phrase: str) -> torch.Tensor:
        """L2-normalised [D] embedding of a phrase (cached)."""
        if phrase not in self._texts:
            self._texts[phrase] = self.model.embed_texts([phrase])[0]
        return self._texts[phrase]


def grounding_map(source: EmbeddingSource, case: GroundingCase, interpolation: str) -> np.ndarray:
    """``[height, width]`` similarity map of ``case.phrase`` on its image, NaN outside the model's crop."""
    patches, _, width, height = source.image(case.key, case.image)
    pp = source.model.preprocessing
    return grounding.similarity_map(torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)),
                            source.text(case.phrase), width, height, pp.resize, pp.crop, interpolation)


def _estimate(e: metrics.Estimate) -> dict[str, float | int]:
    return {k: (float(v) if isinstance(v, float) else v) for k, v in asdict(e).items()}


def summary_json(summary: metrics.GroundingSummary) -> dict[str, Any]:
    """A :class:`GroundingSummary` as plain JSON-friendly dicts."""
    return {
        "per_class": {c: {"cnr": _estimate(pair["cnr"]), "miou": _estimate(pair["miou"])}
                      for c, pair in summary["per_class"].items()},
        "overall": {"cnr": _estimate(summary["overall"]["cnr"]), "miou": _estimate(summary["overall"]["miou"])},
        "class_mean": dict(summary["class_mean"]),
    }


def evaluate_grounding(source: EmbeddingSource, cases: Sequence[GroundingCase], interpolation: str = "bilinear",
                       thresholds: Sequence[float] = metrics.DEFAULT_THRESHOLDS, n_boot: int = 1000, seed: int = 0,
                       keep_records: bool = False) -> dict[str, Any]:
    """CNR and mIoU per finding and overall, with bootstrap CIs; missing / unreadable images are listed, skipped."""
    from cxr_explorer.retrieval.inputs.images import ImageLoadError

    records: list[metrics.GroundingRecord] = []
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    rescaled = 0
    for case in cases:
        try:
            sim = grounding_map(source, case, interpolation)
        except (ImageLoadError, FileNotFoundError) as exc:
            skipped.append({"key": case.key, "phrase": case.phrase, "image": str(case.image), "reason": str(exc)})
            continue
        height, width = sim.shape
        boxes = scale_boxes(case.boxes, case.size, (width, height))
        rescaled += boxes is not case.boxes
        mask = metrics.box_mask(height, width, boxes)
        rec = metrics.GroundingRecord(case.finding, metrics.cnr(sim, mask), metrics.miou(sim, mask, thresholds))
        records.append(rec)
        if keep_records:
            rows.append({"key": case.key, "phrase": case.phrase, **asdict(rec)})
    if not records:
        raise ValueError(f"no case could be evaluated ({len(skipped)} skipped, e.g. {skipped[:1]})")
    out = {
        "task": "grounding", "interpolation": interpolation, "thresholds": list(thresholds),
        "pairs": len(records), "images": len({c.key for c in cases}), "skipped": skipped,
        "boxes_rescaled_pairs": int(rescaled), "from_bundle": source.from_bundle, "image_forwards": source.forwards,
        "bootstrap": {"n_boot": n_boot, "alpha": 0.05, "seed": seed, "method": "percentile"},
        **summary_json(metrics.summarise_by_class(records, n_boot=n_boot, seed=seed)),
    }
    if keep_records:
        out["records"] = rows
    return out


def evaluate_zeroshot(source: EmbeddingSource, items: Sequence[LabelledImage],
                      positive: Sequence[str] = grounding.POSITIVE_PNEUMONIA_PROMPTS,
                      negative: Sequence[str] = grounding.NEGATIVE_PNEUMONIA_PROMPTS) -> dict[str, Any]:
    """Prompt-pair zero-shot: predict positive when margin = cos(image, positive) - cos(image, negative) > 0."""
    from cxr_explorer.retrieval.inputs.images import ImageLoadError

    pos = source.model.embed_texts(list(positive), normalize=False)
    neg = source.model.embed_texts(list(negative), normalize=False)
    labels, margins, skipped = [], [], []
    for item in items:
        try:
            _, global_emb, _, _ = source.image(item.key, item.image)
        except (ImageLoadError, FileNotFoundError) as exc:
            skipped.append({"key": item.key, "image": str(item.image), "reason": str(exc)})
            continue
        score = grounding.zero_shot_margin(torch.from_numpy(np.asarray(global_emb, np.float32)), pos, neg)
        labels.append(item.label)
        margins.append(score.margin)
    if not labels:
        raise ValueError(f"no image could be scored ({len(skipped)} skipped)")
    pred = classification.predict_from_scores(margins)
    try:
        auc: float | None = classification.auroc(labels, margins)
        auc_note = None
    except ValueError as exc:
        auc, auc_note = None, str(exc)
    return {
        "task": "zeroshot", "images": len(labels), "positives": int(np.sum(labels)), "skipped": skipped,
        "positive_prompts": list(positive), "negative_prompts": list(negative), "decision": "margin > 0",
        "accuracy": classification.accuracy(labels, pred), "f1": classification.f1_score(labels, pred),
        "auroc": auc, "auroc_note": auc_note,
        "from_bundle": source.from_bundle, "image_forwards": source.forwards,
    }


def _item_labels(bundle: Any, column: str, sep: str | None) -> dict[str, set[str]]:
    if column not in bundle.metadata.columns:
        raise ValueError(f"the bundle has no metadata column {column!r}; it has {', '.join(bundle.metadata_columns)}")
    out: dict[str, set[str]] = {}
    for rid, value in zip(bundle.metadata["id"].astype(str), bundle.metadata[column], strict=True):
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        parts = [p.strip() for p in (text.split(sep) if sep else [text])]
        out[rid] = {p for p in parts if p}
    return out


def evaluate_retrieval(bundle: Any, ks: Sequence[int] = (1, 5, 10), label_column: str | None = None,
                       label_sep: str | None = ";") -> dict[str, Any]:
    """Recall@K image->report and report->image (an item's own report is its match); precision@K by label."""
    ids = bundle.metadata["id"].astype(str).to_numpy()
    report_rows = np.asarray(bundle.ids("reports"), dtype=np.int64)
    if len(report_rows) == 0:
        raise ValueError("the bundle has no report embeddings to evaluate against")
    image_vecs = np.ascontiguousarray(bundle.vectors("images"), dtype=np.float32)
    image_rows = np.asarray(bundle.ids("images"), dtype=np.int64)
    report_vecs = np.ascontiguousarray(bundle.vectors("reports"), dtype=np.float32)
    kmax = max(ks)
    with_report = np.isin(image_rows, report_rows)
    q_rows = image_rows[with_report]
    _, pos = bundle.index("reports").search(image_vecs[with_report], kmax)
    i2r = [[ids[report_rows[p]] for p in row if p >= 0] for row in pos]
    _, pos = bundle.index("images").search(report_vecs, kmax)
    r2i = [[ids[image_rows[p]] for p in row if p >= 0] for row in pos]
    out: dict[str, Any] = {"task": "retrieval", "items": int(len(ids)), "image_queries": int(len(q_rows)),
                           "report_queries": int(len(report_rows)), "recall_mode": "hit (own report / image)",
                           "image_to_report": {}, "report_to_image": {}}
    for k in ks:
        out["image_to_report"][f"R@{k}"] = classification.recall_at_k(i2r, [{ids[r]} for r in q_rows], k)
        out["report_to_image"][f"R@{k}"] = classification.recall_at_k(r2i, [{ids[r]} for r in report_rows], k)
    if label_column is not None:
        labels = _item_labels(bundle, label_column, label_sep)
        out["precision_by_label"] = {"column": label_column, "separator": label_sep}
        for name, rankings, rows in (("image_to_report", i2r, q_rows), ("report_to_image", r2i, report_rows)):
            ranked, qlabels = [], []
            for ranking, r in zip(rankings, rows, strict=True):
                for lab in sorted(labels[ids[r]]):
                    ranked.append(ranking)
                    qlabels.append(lab)
            out["precision_by_label"][name] = {
                f"P@{k}": classification.precision_at_k_by_label(ranked, qlabels, labels, k) if ranked else {}
                for k in ks}
    return out

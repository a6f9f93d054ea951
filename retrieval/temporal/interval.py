"""Interval change (current vs prior study) with BioViL-T: the temporal image embedding and zero-shot scores.

For each finding of MS-CXR-T (consolidation, edema, pleural effusion, pneumonia, pneumothorax) three prompt sets
(improving / stable / worsening, phrased like radiology report sentences, in the style of the BioViL-T paper's
temporal classification) are embedded, averaged *before* normalisation (as hi-ml's ``get_similarity_score``), and
compared with the L2-normalised global embedding of the current image fused with its prior. Results are cosine
similarities and margins (best minus runner-up), never probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from cxr_explorer.retrieval.engine.query_cache import QueryEncoder
from cxr_explorer.retrieval.models import VLModel
from cxr_explorer.retrieval.models.image_model import ImageEmbeddings

__all__ = ["CLASSES", "FINDINGS", "IntervalChange", "NoTemporalPathError", "encode_pair", "interval_change",
           "interval_prompts"]

FINDINGS: tuple[str, ...] = ("consolidation", "edema", "pleural effusion", "pneumonia", "pneumothorax")
CLASSES: tuple[str, ...] = ("improving", "stable", "worsening")
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "improving": ("Improving {f}", "Interval improvement of {f}", "Decreased {f}", "{F} has decreased"),
    "stable": ("Stable {f}", "Unchanged {f}", "No change in {f}", "{F} is unchanged"),
    "worsening": ("Worsening {f}", "Interval worsening of {f}", "Increased {f}", "{F} has increased"),
}


class NoTemporalPathError(ValueError):
    """The model has no prior-image path (only BioViL-T has one)."""


@dataclass(frozen=True)
class IntervalChange:
    """One finding: ``scores`` per class (cosine in [-1, 1]), the best class and its ``margin`` over the runner-up."""

    finding: str
    scores: dict[str, float]
    predicted: str
    margin: float


def interval_prompts(finding: str) -> dict[str, tuple[str, ...]]:
    """The improving / stable / worsening prompt sets of ``finding`` (4 sentences each)."""
    if not finding.strip():
        raise ValueError("finding is empty")
    f = finding.strip().lower()
    return {c: tuple(t.format(f=f, F=f[0].upper() + f[1:]) for t in ts) for c, ts in _TEMPLATES.items()}


def has_temporal_path(model: VLModel) -> bool:
    """True for models whose image encoder takes a prior image (BioViL-T)."""
    return model.spec.image_arch == "resnet50_multi_image"


def encode_pair(model: VLModel, current: Image.Image, prior: Image.Image | None) -> ImageEmbeddings:
    """Current (+ prior) PIL "L" images -> global [1, D] and patches [1, h, w, D] of the fused forward pass.

    ``prior=None`` is BioViL-T's missing-prior path (the learned missing-previous embedding)."""
    if not has_temporal_path(model):
        raise NoTemporalPathError(f"model {model.spec.name!r} has no prior-image path; use a biovil-t bundle")
    x = model.preprocess(current).unsqueeze(0)
    prev = model.preprocess(prior).unsqueeze(0) if prior is not None else None
    return model.encode_images(x, prev)


def interval_change(encoder: QueryEncoder, global_emb: torch.Tensor, findings: Sequence[str] = FINDINGS
                    ) -> list[IntervalChange]:
    """Zero-shot interval change per finding for one L2-normalised global embedding ``[D]`` (or ``[1, D]``); each
    finding's prompt sets are embedded in one forward of ``encoder``'s model and cached by it."""
    image = global_emb.detach().cpu().float().reshape(-1).numpy()
    out = []
    for finding in findings:
        prompts = interval_prompts(finding)
        texts = encoder.prompt_set_embeddings([prompts[c] for c in CLASSES])
        scores = {c: float(image @ text) for c, text in zip(CLASSES, texts, strict=True)}
        ranked = sorted(CLASSES, key=lambda c: -scores[c])
        out.append(IntervalChange(finding, scores, ranked[0], scores[ranked[0]] - scores[ranked[1]]))
    return out

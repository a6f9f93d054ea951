"""Model-card facts of the released models, derived from the registry (:mod:`retrieval.models.registry`).

The registry owns what loading needs (repository, revision, preprocessing, architecture, checksum); this module adds
only what it cannot know: the paper and the published MS-CXR grounding figures. The About page shows these cards.
"""

from __future__ import annotations

from dataclasses import dataclass

from cxr_explorer.retrieval.models.registry import REGISTRY, ImageArch, ModelSpec


@dataclass(frozen=True)
class Published:
    """What the model's paper and model card report: the citation and the MS-CXR phrase-grounding figures."""

    paper: str
    grounding: str


PUBLISHED: dict[str, Published] = {
    "biovil": Published("BioViL, Boecking et al., ECCV 2022",
                        "mean CNR 1.07 ± 0.04 (BioViL-T model card) / 1.027 (CXR-BERT model card); mIoU 0.229"),
    "biovil-t": Published("BioViL-T, Bannur et al., CVPR 2023", "mean CNR 1.33; mIoU 0.240"),
}
IMAGE_ENCODERS: dict[ImageArch, str] = {
    "resnet50": "ResNet-50",
    "resnet50_multi_image": "ResNet-50 + temporal ViT pooler",
}


def model_card(spec: ModelSpec) -> dict[str, str]:
    """Fact name -> value for one model, in display order (published facts only where known)."""
    published = PUBLISHED.get(spec.name)
    facts = {
        "Paper": published.paper if published else "",
        "Repository": spec.hf_repo or "",
        "Revision": spec.revision or "",
        "Image encoder": f"{IMAGE_ENCODERS[spec.image_arch]}, {spec.joint_dim}-d projection",
        "Preprocessing": f"resize {spec.resize}, centre crop {spec.crop}",
        "Image weights MD5": spec.image_md5 or "",
        "MS-CXR grounding (published)": published.grounding if published else "",
    }
    return {k: v for k, v in facts.items() if v}


def released_cards() -> dict[str, dict[str, str]]:
    """Model name -> card of every real (released) model in the registry."""
    return {name: model_card(spec) for name, spec in REGISTRY.items() if spec.is_real}

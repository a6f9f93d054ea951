"""One registry of model specs, as data (repo, revision, checksum, preprocessing, widths).

Every consumer (index job, CLI, app) gets encoders and their preprocessing from :func:`get_spec` through the factory in
:mod:`retrieval.models.api`, so indexing and querying can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ImageArch = Literal["resnet50", "resnet50_multi_image"]


@dataclass(frozen=True)
class TextDims:
    """Widths of the BERT text tower (CXR-BERT is BERT-base)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build, fetch, verify and feed one image-text model.

    ``hf_repo``/``revision``/``image_file``/``image_md5`` locate and verify the released weights; ``resize`` and
    ``crop`` are the reference's inference preprocessing (shorter side to ``resize``, centre crop ``crop``).
    ``base_width`` is the ResNet stem width (64 for ResNet-50; smaller only for the synthetic test model).
    """

    name: str
    description: str
    image_arch: ImageArch
    resize: int
    crop: int
    joint_dim: int = 128
    hf_repo: str | None = None
    revision: str | None = None
    image_file: str | None = None
    image_md5: str | None = None
    base_width: int = 64
    text: TextDims = field(default_factory=TextDims)
    is_real: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view, recorded in bundle manifests."""
        return asdict(self)


TEXT_FILES_REQUIRED: tuple[str, ...] = ("config.json", "vocab.txt")
TEXT_FILES_OPTIONAL: tuple[str, ...] = ("tokenizer_config.json", "special_tokens_map.json")
TEXT_WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")

TINY_TEXT = TextDims(vocab_size=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
"""The text tower of the two tiny test models (BioViL's classes at tiny widths)."""

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="biovil",
            description="BioViL (ECCV 2022): ResNet-50 + CXR-BERT-specialized, 128-d joint space",
            image_arch="resnet50",
            resize=512,
            crop=480,
            hf_repo="microsoft/BiomedVLP-CXR-BERT-specialized",
            revision="v1.1",
            image_file="biovil_image_resnet50_proj_size_128.pt",
            image_md5="02ce6ee460f72efd599295f440dbb453",
        ),
        ModelSpec(
            name="biovil-t",
            description="BioViL-T (CVPR 2023): ResNet-50 + temporal ViT pooler + BioViL-T BERT, 128-d joint space",
            image_arch="resnet50_multi_image",
            resize=512,
            crop=448,
            hf_repo="microsoft/BiomedVLP-BioViL-T",
            revision="v1.0",
            image_file="biovil_t_image_model_proj_size_128.pt",
            image_md5="a83080e2f23aa584a4f2b24c39b1bb64",
        ),
        ModelSpec(
            name="tiny-random",
            description="NOT A REAL MODEL: BioViL's classes at tiny widths with seeded random weights, for tests",
            image_arch="resnet50",
            resize=512,
            crop=480,
            base_width=8,
            text=TINY_TEXT,
            is_real=False,
        ),
        ModelSpec(
            name="tiny-random-t",
            description="NOT A REAL MODEL: BioViL-T's classes (temporal pooler included) at tiny widths with seeded "
                        "random weights, for tests of the prior-image path",
            image_arch="resnet50_multi_image",
            resize=512,
            crop=448,
            base_width=8,
            text=TINY_TEXT,
            is_real=False,
        ),
    )
}


class UnknownModelError(ValueError):
    """Raised for a model name that is not in the registry."""


def get_spec(name: str) -> ModelSpec:
    """Return the spec called ``name``; an unknown name raises an error listing the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(REGISTRY))
        raise UnknownModelError(f"unknown model {name!r}; valid models: {valid}") from None


def list_models() -> list[str]:
    """Names of all registered models."""
    return sorted(REGISTRY)

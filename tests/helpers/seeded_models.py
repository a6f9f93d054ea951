"""Real-size model architectures with name-seeded weights, for tests that need the real shapes (never a real model).

:func:`real_size_model` builds ``name``'s registered architecture (e.g. BioViL-T: ResNet-50 at 448 px crops, the
temporal ViT pooler, BERT-base widths) through the product's own seeded builder, with the tiny test vocabulary: the
image side and every layer width are real-size; the text tower's embedding table is small.
"""

from __future__ import annotations

import torch

from cxr_explorer.retrieval.models.api import ModelIdentity, VLModel
from cxr_explorer.retrieval.models.loading import build_seeded, tiny_vocab
from cxr_explorer.retrieval.models.registry import get_spec

NOTE = "test-seeded: the real-size architecture with seeded random weights; similarities are meaningless"


def real_size_model(name: str) -> VLModel:
    """An fp32 CPU ``VLModel`` of ``name``'s real-size architecture with weights seeded by ``test-{name}``."""
    spec = get_spec(name)
    image, text, tok = build_seeded(spec, tiny_vocab(), f"test-{name}")
    identity = ModelIdentity(name, "test-seeded", None, False, "test-seeded", False, (NOTE,))
    return VLModel(spec, image.eval(), text.eval(), tok, identity, torch.device("cpu"), "fp32")

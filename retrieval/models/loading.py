"""Build our modules and fill them from released files (strictly) or from seeded weights (``tiny-random`` only)."""

from __future__ import annotations

import json
import logging
import string
from collections import OrderedDict
from pathlib import Path

import torch

from cxr_explorer.retrieval.models.image_model import ImageModel
from cxr_explorer.retrieval.models.registry import TEXT_WEIGHT_FILES, ModelSpec, TextDims
from cxr_explorer.retrieval.models.released import (
    ReleasedLayoutError,
    do_lower_case,
    normalise_text_keys,
    state_dict_misfit,
    text_dims_from_config,
    text_state_misfit,
    vocab_misfit,
)
from cxr_explorer.retrieval.models.seeded import seeded_state_dict
from cxr_explorer.retrieval.models.text_model import CXRBertModel, TextTokenizer, bert_config
from cxr_explorer.retrieval.models.weights import WeightsFormatError, read_state_dict

log = logging.getLogger(__name__)

# Keys of the released text checkpoints that the embedding path does not use.
_TEXT_DROPPED_PREFIXES = ("cls.predictions.", "bert.pooler.")
_TEXT_DROPPED_KEYS = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")


def load_image_model(spec: ModelSpec, path: Path) -> ImageModel:
    """Build the image model of ``spec`` and load ``path`` with ``strict=True`` (released layout incl. ``fc``)."""
    model = ImageModel(spec)
    state = read_state_dict(path)
    misfit = state_dict_misfit(model.state_dict(), state)
    if misfit is not None:
        raise ReleasedLayoutError(f"{path} does not fit the {spec.name} image model: {misfit}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsFormatError(f"cannot read {path}: {exc}") from None


def _text_state(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    for name in TEXT_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name, read_state_dict(folder / name)
    raise WeightsFormatError(f"{folder} holds none of {TEXT_WEIGHT_FILES}")


def load_text_model(folder: Path, projection_size: int = 128
                    ) -> tuple[CXRBertModel, TextTokenizer, tuple[str, ...]]:
    """Load an HF-style CXR-BERT folder (config.json, vocab.txt, weights) with our own classes.

    Accepts what hi-ml 0.2.2 accepts (its ``CXRBertConfig`` defaults, ``BertTokenizer``'s vocab reading,
    ``from_pretrained``'s key fixes and ignored extra keys) and returns what it tolerated as warnings (logged once
    here; the bundle manifest records them with the model identity). Refuses, naming the file and the field or key,
    whatever would change the outputs: a missing weight, another shape, a token id outside the embedding table."""
    warnings: list[str] = []
    config_path = folder / "config.json"
    cfg = _read_json(config_path)
    dims = text_dims_from_config(cfg, config_path, projection_size, warnings)
    model = CXRBertModel(bert_config(dims), projection_size=projection_size)
    weights_path, state = _text_state(folder)
    expected = model.state_dict()
    state = {k: v for k, v in normalise_text_keys(state, expected).items()
             if not k.startswith(_TEXT_DROPPED_PREFIXES) and k not in _TEXT_DROPPED_KEYS}
    misfit = text_state_misfit(expected, state, warnings)
    if misfit is not None:
        raise ReleasedLayoutError(f"{weights_path} does not fit CXR-BERT as {config_path} describes it: {misfit}")
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=True)
    tok_path = folder / "tokenizer_config.json"
    lower = do_lower_case(_read_json(tok_path), tok_path) if tok_path.is_file() else True
    vocab_misfit(folder / "vocab.txt", config_path, dims.vocab_size, warnings)
    tokenizer = TextTokenizer.from_vocab(folder / "vocab.txt", lower, dims.max_position_embeddings)
    tolerated = ((f"the text model loaded as hi-ml 0.2.2 loads it, tolerating: {'; '.join(warnings)}",)
                 if warnings else ())
    for line in tolerated:
        log.warning(line)
    return model.eval(), tokenizer, tolerated


_TINY_WORDS = (
    "no evidence of there is are a an the and or with without in on at to left right bilateral lung lungs lobe "
    "upper middle lower base bases basilar apex apical consolidation opacity opacities effusion effusions pleural "
    "pneumonia pneumothorax edema cardiomegaly atelectasis heart size normal enlarged mild moderate severe small "
    "large findings consistent suggesting suggest can represent most compatible acute chronic signs seen focal "
    "diffuse patchy infiltrate infiltrates nodule mass fracture tube line catheter stable unchanged clear covid "
    "ground glass interstitial pattern peripheral central view pa ap lateral chest x ray film"
).split()


def tiny_vocab() -> OrderedDict[str, int]:
    """The synthetic WordPiece vocab of ``tiny-random``: specials, characters, their ``##`` forms, common words."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars), *_TINY_WORDS]
    unique = list(dict.fromkeys(tokens))
    return OrderedDict((t, i) for i, t in enumerate(unique))


def build_seeded(spec: ModelSpec, vocab: OrderedDict[str, int], salt: str
                 ) -> tuple[ImageModel, CXRBertModel, TextTokenizer]:
    """``spec``'s architecture with name-seeded weights (salts ``{salt}-image``/``{salt}-text``) and a text tower
    sized to ``vocab``. For ``tiny-random`` and for timing the real-size architecture; never a user's real model."""
    image = ImageModel(spec)
    image.load_state_dict(seeded_state_dict(image.state_dict(), salt=f"{salt}-image"))
    dims = TextDims(**{**spec.text.__dict__, "vocab_size": len(vocab)})
    text = CXRBertModel(bert_config(dims), projection_size=spec.joint_dim)
    text.load_state_dict(seeded_state_dict(text.state_dict(), salt=f"{salt}-text"))
    return image.eval(), text.eval(), TextTokenizer.from_vocab(vocab, True, dims.max_position_embeddings)


def build_tiny(spec: ModelSpec) -> tuple[ImageModel, CXRBertModel, TextTokenizer]:
    """``tiny-random``: deterministic seeded weights; never used unless asked for by name."""
    log.warning("MODEL %r IS NOT A REAL MODEL: random seeded weights for tests and smoke runs; its similarities "
                "mean nothing", spec.name)
    return build_seeded(spec, tiny_vocab(), spec.name)

"""What the released model folders hold, and a check that names the file and the field where a folder does not fit.

Facts read from the public files of the two Hugging Face repos at the pinned revisions (see ``docs/weights.md``):

* CXR-BERT-specialized (``biovil``, ``v1.1``): ``config.json`` with ``model_type: "cxr-bert"``,
  ``architectures: ["CXRBertModel"]``, ``auto_map``; ``tokenizer_config.json`` with
  ``tokenizer_class: "CXRBertTokenizer"``; ``pytorch_model.bin``.
* BioViL-T (``biovil-t``, ``v1.0``): ``config.json`` WITHOUT ``model_type`` (the original upload said ``"bert"``;
  ``transformers_version`` 4.17.0), ``architectures: ["CXRBertModel"]``; ``tokenizer_config.json`` with
  ``tokenizer_class: "BertTokenizer"`` and no ``auto_map``; ``pytorch_model.bin`` (a ``model.safetensors`` is
  accepted too).

Both: ``vocab.txt`` (30,522 entries), ``special_tokens_map.json``, and the image checkpoint named in the registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxr_explorer.retrieval.models.registry import TextDims
from cxr_explorer.retrieval.models.weights import WeightsFormatError

#: ``config.json`` ``model_type`` values seen in the released repos (absent in BioViL-T's current config).
MODEL_TYPES: tuple[str | None, ...] = ("cxr-bert", "bert", None)
ARCHITECTURE = "CXRBertModel"
#: Fields our text tower hard-codes (``retrieval.models.text_model.bert_config``): value in the released configs.
FIXED_FIELDS: dict[str, Any] = {"hidden_act": "gelu", "type_vocab_size": 2, "layer_norm_eps": 1e-12,
                                "pad_token_id": 0, "position_embedding_type": "absolute"}
DIM_FIELDS: tuple[str, ...] = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                               "intermediate_size", "max_position_embeddings")
TOKENIZER_CLASSES: tuple[str, ...] = ("CXRBertTokenizer", "BertTokenizer", "BertTokenizerFast")


class ReleasedLayoutError(WeightsFormatError):
    """A file of a weights folder does not have the released layout; the message names the file and the field."""


def _fail(path: Path, field: str, problem: str) -> ReleasedLayoutError:
    return ReleasedLayoutError(f"{path}: field {field!r} {problem}")


def text_dims_from_config(cfg: dict[str, Any], path: Path, projection_size: int) -> TextDims:
    """Validate a released text ``config.json`` (already parsed) and return its widths.

    Raises :class:`ReleasedLayoutError` naming ``path`` and the offending field: a ``model_type`` other than
    cxr-bert/bert/absent, ``architectures`` without CXRBertModel (e.g. CXR-BERT-general's BertForMaskedLM, which has
    no projection head), a missing or non-integer width, a ``projection_size`` other than ``projection_size``, or a
    fixed field (activation, norm eps, ...) with another value than the released one.
    """
    model_type = cfg.get("model_type")
    if model_type not in MODEL_TYPES:
        raise _fail(path, "model_type", f"is {model_type!r}; expected 'cxr-bert', 'bert' or absent")
    arch = cfg.get("architectures")
    if not isinstance(arch, list) or ARCHITECTURE not in arch:
        raise _fail(path, "architectures", f"is {arch!r}; expected a list holding {ARCHITECTURE!r} (a model with "
                    "the CXR-BERT projection head)")
    for name in DIM_FIELDS:
        value = cfg.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _fail(path, name, f"is {value!r}; expected a positive integer")
    proj = cfg.get("projection_size")
    if proj != projection_size:
        raise _fail(path, "projection_size", f"is {proj!r}; the joint space of this model is {projection_size}")
    for name, expected in FIXED_FIELDS.items():
        if name in cfg and cfg[name] != expected:
            raise _fail(path, name, f"is {cfg[name]!r}; the released models have {expected!r}")
    return TextDims(**{n: int(cfg[n]) for n in DIM_FIELDS})


def do_lower_case(tok_cfg: dict[str, Any], path: Path) -> bool:
    """``do_lower_case`` of a released ``tokenizer_config.json`` (True when absent); its class must be BERT's."""
    cls = tok_cfg.get("tokenizer_class")
    if cls is not None and cls not in TOKENIZER_CLASSES:
        raise _fail(path, "tokenizer_class", f"is {cls!r}; expected one of {', '.join(TOKENIZER_CLASSES)}")
    value = tok_cfg.get("do_lower_case", True)
    if not isinstance(value, bool):
        raise _fail(path, "do_lower_case", f"is {value!r}; expected true or false")
    return value


def state_dict_misfit(expected: dict[str, Any], found: dict[str, Any]) -> str | None:
    """The first difference between a model's state dict and a checkpoint's, as "key 'K' missing/unexpected/has
    shape S, expected E" (with the number of other differences), or None when keys and shapes all agree."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [k for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    problems = ([f"key {k!r} is missing" for k in missing] + [f"key {k!r} is unexpected" for k in unexpected] +
                [f"key {k!r} has shape {tuple(found[k].shape)}, expected {tuple(expected[k].shape)}" for k in shapes])
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more differences)" if len(problems) > 1 else ""
    return problems[0] + more

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
#: hi-ml's ``CXRBertConfig`` default, used when ``config.json`` has no ``projection_size``.
DEFAULT_PROJECTION_SIZE = 128
#: Renames ``from_pretrained`` applies to legacy checkpoint keys (TF-era LayerNorm parameter names).
LEGACY_KEY_SUFFIXES: tuple[tuple[str, str], ...] = ((".gamma", ".weight"), (".beta", ".bias"))
#: The base-model prefix ``from_pretrained`` adds to a checkpoint saved from a bare ``BertModel``.
BASE_MODEL_PREFIX = "bert."


class ReleasedLayoutError(WeightsFormatError):
    """A file of a weights folder does not have the released layout; the message names the file and the field."""


def _fail(path: Path, field: str, problem: str) -> ReleasedLayoutError:
    return ReleasedLayoutError(f"{path}: field {field!r} {problem}")


def text_dims_from_config(cfg: dict[str, Any], path: Path, projection_size: int, warnings: list[str]) -> TextDims:
    """Validate a released text ``config.json`` (already parsed) and return its widths.

    Accepts what hi-ml's ``CXRBertConfig`` accepts: an absent ``projection_size`` is its default 128 (appended to
    ``warnings``). Raises :class:`ReleasedLayoutError` naming ``path`` and the offending field: a ``model_type`` other
    than cxr-bert/bert/absent, ``architectures`` without CXRBertModel (e.g. CXR-BERT-general's BertForMaskedLM, which
    has no projection head), a missing or non-integer width, a ``projection_size`` other than ``projection_size``, or
    a fixed field (activation, norm eps, ...) with another value than the released one.
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
    proj = cfg.get("projection_size", DEFAULT_PROJECTION_SIZE)
    if "projection_size" not in cfg:
        warnings.append(f"{path} has no 'projection_size'; using hi-ml's default {DEFAULT_PROJECTION_SIZE}")
    if isinstance(proj, bool) or proj != projection_size:
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


def vocab_misfit(path: Path, config_path: Path, vocab_size: int, warnings: list[str]) -> None:
    """Check ``vocab.txt`` against ``vocab_size`` as the tokenizer reads it: token id = line number, a repeated
    token keeps its last line. Fewer entries than ``vocab_size`` or repeated tokens only warn (hi-ml loads them and
    the outputs are those of the file); an id outside the embedding table would change them and is refused."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReleasedLayoutError(f"cannot read {path}: {exc}") from None
    tokens = [line.strip() for line in lines]
    while tokens and not tokens[-1]:
        tokens.pop()
    if len(tokens) > vocab_size:
        raise ReleasedLayoutError(f"{path} has {len(tokens)} lines, so token ids reach {len(tokens) - 1}, but field "
                                  f"'vocab_size' of {config_path} is {vocab_size}: those ids have no embedding")
    unique = len(set(tokens))
    if unique != vocab_size:
        repeats = len(tokens) - unique
        repeated = f", {repeats} repeated (the last line of each is its id)" if repeats else ""
        warnings.append(f"{path} has {unique} distinct tokens{repeated}; field 'vocab_size' of {config_path} is "
                        f"{vocab_size} (accepted, as hi-ml does: every token id is inside the embedding table)")


def normalise_text_keys(state: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The key fixes ``from_pretrained`` makes before loading: legacy ``gamma``/``beta`` names and, for a checkpoint
    of a bare ``BertModel``, the ``bert.`` prefix. Values are untouched."""
    fixed: dict[str, Any] = {}
    for key, value in state.items():
        for old, new in LEGACY_KEY_SUFFIXES:
            if key.endswith(old) and "LayerNorm" in key:
                key = key[: -len(old)] + new
        fixed[key] = value
    if not any(k.startswith(BASE_MODEL_PREFIX) for k in fixed):
        heads = {k.split(".")[0] for k in expected if not k.startswith(BASE_MODEL_PREFIX)} | {"cls"}
        fixed = {(k if k.split(".")[0] in heads else BASE_MODEL_PREFIX + k): v for k, v in fixed.items()}
    return fixed


def text_state_misfit(expected: dict[str, Any], found: dict[str, Any], warnings: list[str]) -> str | None:
    """As :func:`state_dict_misfit`, but lenient where ``from_pretrained`` is and the outputs do not change: keys the
    model does not have are ignored (named in ``warnings``). Missing keys (``from_pretrained`` would fill them with
    random values) and other shapes are refused."""
    unexpected = [k for k in found if k not in expected]
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        warnings.append(f"the text checkpoint holds {len(unexpected)} key(s) the model does not use, ignored as "
                        f"from_pretrained ignores them: {unexpected[0]!r}{more}")
    return state_dict_misfit(expected, {k: v for k, v in found.items() if k in expected})


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

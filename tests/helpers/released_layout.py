"""Write files exactly as the released BioViL repos lay them out (same names, keys, JSON fields), at tiny widths.

Used to test the real loading path (weights dir, offline HF cache) without the hub: only the tensor sizes differ from
the released files; key names, extra keys (``fc``, ``cls.predictions.*``, legacy ``position_ids``) and file names are
the released ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from cxr_explorer.retrieval.models.image_model import ImageModel
from cxr_explorer.retrieval.models.loading import tiny_vocab
from cxr_explorer.retrieval.models.registry import ModelSpec, TextDims, get_spec
from cxr_explorer.retrieval.models.seeded import seeded_state_dict
from cxr_explorer.retrieval.models.text_model import CXRBertModel, bert_config

TINY_TEXT = TextDims(vocab_size=len(tiny_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64)


def small_spec(name: str = "biovil") -> ModelSpec:
    """The released spec of ``name`` at tiny ResNet width (checksum filled in once the file is written)."""
    return dataclasses.replace(get_spec(name), base_width=8)


def write_image_file(spec: ModelSpec, folder: Path) -> str:
    """Save ``encoder.encoder.*`` (incl. ``fc``) + ``projector.model.{0,1,3}.*`` as ``torch.save`` does; return md5."""
    model = ImageModel(spec)
    state = seeded_state_dict(model.state_dict(), salt="released-layout")
    assert "encoder.encoder.fc.weight" in state and "projector.model.3.bias" in state
    folder.mkdir(parents=True, exist_ok=True)
    assert spec.image_file is not None
    torch.save(state, folder / spec.image_file)
    return hashlib.md5((folder / spec.image_file).read_bytes()).hexdigest()


def _text_state(model: CXRBertModel) -> dict[str, torch.Tensor]:
    state = seeded_state_dict(model.state_dict(), salt="released-text")
    hidden, vocab = TINY_TEXT.hidden_size, TINY_TEXT.vocab_size
    state["bert.embeddings.position_ids"] = torch.arange(TINY_TEXT.max_position_embeddings).unsqueeze(0)
    state["cls.predictions.bias"] = torch.zeros(vocab)
    state["cls.predictions.transform.dense.weight"] = torch.zeros(hidden, hidden)
    state["cls.predictions.transform.dense.bias"] = torch.zeros(hidden)
    state["cls.predictions.transform.LayerNorm.weight"] = torch.ones(hidden)
    state["cls.predictions.transform.LayerNorm.bias"] = torch.zeros(hidden)
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"].clone()
    state["cls.predictions.decoder.bias"] = torch.zeros(vocab)
    return state


def released_text_config(model_name: str) -> dict:
    """``config.json`` with the fields of the released repo of ``model_name`` (tiny widths).

    CXR-BERT-specialized (biovil): ``model_type`` cxr-bert, AutoConfig + AutoModel ``auto_map``, transformers 4.18.
    BioViL-T: NO ``model_type`` field, ``_name_or_path``, ``torch_dtype``, ``use_cache``, transformers 4.17.
    """
    config: dict = {
        "architectures": ["CXRBertModel"], "projection_size": 128,
        "auto_map": {"AutoConfig": "configuration_cxrbert.CXRBertConfig",
                     "AutoModel": "modeling_cxrbert.CXRBertModel"},
        "vocab_size": TINY_TEXT.vocab_size, "hidden_size": TINY_TEXT.hidden_size,
        "num_hidden_layers": TINY_TEXT.num_hidden_layers, "num_attention_heads": TINY_TEXT.num_attention_heads,
        "intermediate_size": TINY_TEXT.intermediate_size, "hidden_act": "gelu", "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
        "hidden_dropout_prob": 0.25, "attention_probs_dropout_prob": 0.25,
    }
    if model_name == "biovil-t":
        config.update({"_name_or_path": "microsoft/BiomedVLP-BioViL-T", "classifier_dropout": None,
                       "gradient_checkpointing": False, "initializer_range": 0.02, "torch_dtype": "float32",
                       "transformers_version": "4.17.0", "use_cache": True})
    else:
        config.update({"model_type": "cxr-bert", "transformers_version": "4.18.0"})
    return config


def released_tokenizer_config(model_name: str) -> dict:
    """``tokenizer_config.json`` of the released repo: CXRBertTokenizer with auto_map (biovil), BertTokenizer
    (biovil-t)."""
    base = {"do_lower_case": True, "do_basic_tokenize": True, "never_split": None, "unk_token": "[UNK]",
            "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
            "tokenize_chinese_chars": True, "strip_accents": None}
    if model_name == "biovil-t":
        return {**base, "tokenizer_class": "BertTokenizer"}
    return {**base, "tokenizer_class": "CXRBertTokenizer",
            "auto_map": {"AutoTokenizer": ["configuration_cxrbert.CXRBertTokenizer", None]}}


def write_text_folder(folder: Path, safetensors: bool = False, model_name: str = "biovil") -> CXRBertModel:
    """config.json, vocab.txt, tokenizer_config.json, special_tokens_map.json and pytorch_model.bin /
    model.safetensors as the released repo of ``model_name`` holds them."""
    folder.mkdir(parents=True, exist_ok=True)
    model = CXRBertModel(bert_config(TINY_TEXT), projection_size=128)
    (folder / "config.json").write_text(json.dumps(released_text_config(model_name), indent=2))
    (folder / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(released_tokenizer_config(model_name)))
    specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                "mask_token": "[MASK]"}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))
    state = _text_state(model)
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("cls.") and "position_ids" not in k})
    return model.eval()


def write_repo_dir(spec: ModelSpec, folder: Path, safetensors: bool = False) -> ModelSpec:
    """A folder as ``huggingface-cli download REPO --local-dir DIR`` leaves it; returns the spec with its md5."""
    md5 = write_image_file(spec, folder)
    write_text_folder(folder, safetensors, spec.name)
    return dataclasses.replace(spec, image_md5=md5)


def write_hf_cache(spec: ModelSpec, hf_home: Path, commit: str = "a" * 40) -> Path:
    """Populate ``HF_HOME/hub`` as huggingface_hub does: refs/<revision> -> commit, snapshots/<commit>/files."""
    assert spec.hf_repo is not None and spec.revision is not None
    repo = hf_home / "hub" / ("models--" + spec.hf_repo.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / spec.revision).write_text(commit)
    snapshot = repo / "snapshots" / commit
    write_repo_dir(spec, snapshot)
    return snapshot

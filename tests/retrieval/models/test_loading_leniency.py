"""The text loader accepts what hi-ml 0.2.2 accepts, warns once where it tolerates something, and refuses only what
would change the outputs (naming the file and the field or key)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cxr_explorer.retrieval.models import build_model
from cxr_explorer.retrieval.models.registry import ModelSpec
from cxr_explorer.retrieval.models.weights import WeightsFormatError, read_state_dict
from tests.helpers.released_layout import small_spec, write_repo_dir

PHRASES = ["left lower lobe consolidation", "no pleural effusion"]


def _folder(tmp_path: Path, name: str) -> tuple[ModelSpec, Path]:
    folder = tmp_path / name
    return write_repo_dir(small_spec("biovil-t"), folder), folder


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _edit_state(path: Path, edit: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> None:
    torch.save(edit(read_state_dict(path)), path)


def _texts(spec: ModelSpec, folder: Path) -> tuple[torch.Tensor, tuple[str, ...]]:
    model = build_model(spec, weights_dir=folder, device="cpu")
    return model.embed_texts(PHRASES), model.identity.warnings


def test_absent_projection_size_is_hi_ml_default_128(tmp_path: Path) -> None:
    spec, folder = _folder(tmp_path, "w")
    reference, _ = _texts(spec, folder)
    _edit_json(folder / "config.json", lambda c: c.pop("projection_size"))
    emb, warnings = _texts(spec, folder)
    assert torch.equal(emb, reference)
    assert len(warnings) == 1 and "projection_size" in warnings[0] and "config.json" in warnings[0]


def test_vocab_with_repeated_token_loads_with_one_warning(tmp_path: Path) -> None:
    """BertTokenizer (hi-ml's) gives each line its number; a repeated token keeps its last line. Fewer distinct
    tokens than vocab_size does not change any output, so it loads."""
    spec, folder = _folder(tmp_path, "w")
    lines = (folder / "vocab.txt").read_text().splitlines()
    last = lines[-1]
    lines[-1] = lines[-2]
    (folder / "vocab.txt").write_text("\n".join(lines) + "\n")
    model = build_model(spec, weights_dir=folder, device="cpu")
    assert len(model.identity.warnings) == 1 and "vocab.txt" in model.identity.warnings[0]
    assert "'vocab_size'" in model.identity.warnings[0] and "repeated" in model.identity.warnings[0]
    ids, _ = model.tokenizer([lines[-2]])
    assert int(ids[0, 1]) == len(lines) - 1 and last not in model.tokenizer.tokenizer.get_vocab()


def test_vocab_with_ids_beyond_the_embedding_table_is_refused(tmp_path: Path) -> None:
    spec, folder = _folder(tmp_path, "w")
    with (folder / "vocab.txt").open("a") as f:
        f.write("zzzextra\n")
    with pytest.raises(WeightsFormatError) as info:
        build_model(spec, weights_dir=folder, device="cpu")
    assert "vocab.txt" in str(info.value) and "'vocab_size'" in str(info.value) and "config.json" in str(info.value)


def test_extra_text_keys_are_ignored_as_from_pretrained_does(tmp_path: Path) -> None:
    spec, folder = _folder(tmp_path, "w")
    reference, _ = _texts(spec, folder)
    _edit_state(folder / "pytorch_model.bin", lambda s: {**s, "bert.extra.weight": torch.zeros(3),
                                                         "lm_head.bias": torch.zeros(2)})
    emb, warnings = _texts(spec, folder)
    assert torch.equal(emb, reference)
    assert len(warnings) == 1 and "'bert.extra.weight'" in warnings[0] and "2 key(s)" in warnings[0]


def test_legacy_layernorm_names_and_bare_bert_prefix_load_as_from_pretrained_fixes_them(tmp_path: Path) -> None:
    spec, folder = _folder(tmp_path, "w")
    reference, _ = _texts(spec, folder)

    def legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                   for k, v in state.items()}
        return {k.removeprefix("bert."): v for k, v in renamed.items()}

    _edit_state(folder / "pytorch_model.bin", legacy)
    emb, warnings = _texts(spec, folder)
    assert torch.equal(emb, reference) and warnings == ()


@pytest.mark.parametrize("edit", ["missing", "shape"])
def test_what_would_change_outputs_is_refused_naming_file_and_key(tmp_path: Path, edit: str) -> None:
    spec, folder = _folder(tmp_path, "w")
    key = "bert.encoder.layer.0.attention.self.query.weight"

    def change(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if edit == "missing":
            del state[key]
        else:
            state[key] = state[key][:, :-1]
        return state

    _edit_state(folder / "pytorch_model.bin", change)
    with pytest.raises(WeightsFormatError) as info:
        build_model(spec, weights_dir=folder, device="cpu")
    assert "pytorch_model.bin" in str(info.value) and repr(key) in str(info.value)


def test_projection_size_null_is_refused(tmp_path: Path) -> None:
    spec, folder = _folder(tmp_path, "w")
    _edit_json(folder / "config.json", lambda c: c.update(projection_size=None))
    with pytest.raises(WeightsFormatError, match="'projection_size'"):
        build_model(spec, weights_dir=folder, device="cpu")

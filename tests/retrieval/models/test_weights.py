"""Weight resolution and strict loading of files in the released layouts: weights dir and offline HF cache."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cxr_explorer.retrieval.models import build_model, load_model
from cxr_explorer.retrieval.models.registry import UnknownModelError, get_spec
from cxr_explorer.retrieval.models.weights import WeightsFormatError, WeightsNotFoundError, read_state_dict
from tests.helpers.paths import REPO
from tests.helpers.released_layout import small_spec, write_hf_cache, write_repo_dir


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(UnknownModelError, match="biovil, biovil-t, tiny-random"):
        load_model("clip")


def test_weights_dir_loads_strictly_and_verifies(tmp_path: Path) -> None:
    spec = write_repo_dir(small_spec(), tmp_path / "w")
    model = build_model(spec, weights_dir=tmp_path / "w", device="cpu")
    assert model.identity.verified and model.identity.source == "weights-dir" and not model.identity.warnings
    x = torch.rand(1, 3, spec.crop, spec.crop)
    emb = model.encode_images(x)
    assert emb.global_emb.shape == (1, 128) and emb.patches.shape == (1, 15, 15, 128)
    assert torch.allclose(model.embed_texts(["left lung opacity"]).norm(dim=1), torch.ones(1))


def test_weights_dir_safetensors_text(tmp_path: Path) -> None:
    spec = write_repo_dir(small_spec("biovil-t"), tmp_path / "w", safetensors=True)
    model = build_model(spec, weights_dir=tmp_path / "w", device="cpu")
    assert model.encode_images(torch.rand(1, 3, 448, 448)).patches.shape == (1, 14, 14, 128)


def test_weights_dir_checksum_mismatch_warns_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = write_repo_dir(small_spec(), tmp_path / "w")
    wrong = dataclasses.replace(spec, image_md5="0" * 32)
    model = build_model(wrong, weights_dir=tmp_path / "w", device="cpu")
    assert spec.image_md5 is not None
    assert not model.identity.verified
    assert model.identity.warnings and "NOT VERIFIED" in model.identity.warnings[0]
    assert spec.image_md5 in model.identity.warnings[0]
    assert "NOT VERIFIED" in caplog.text


def test_weights_dir_missing_files_is_clear(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    with pytest.raises(WeightsNotFoundError, match="biovil_image_resnet50_proj_size_128.pt.*--weights-dir"):
        load_model("biovil", weights_dir=tmp_path / "w")


def test_image_file_with_wrong_keys_is_refused(tmp_path: Path) -> None:
    spec = write_repo_dir(small_spec(), tmp_path / "w")
    assert spec.image_file is not None
    path = tmp_path / "w" / spec.image_file
    state = read_state_dict(path)
    del state["encoder.encoder.fc.weight"]
    torch.save(state, path)
    with pytest.raises(WeightsFormatError, match="fc.weight"):
        build_model(dataclasses.replace(spec, image_md5="x"), weights_dir=tmp_path / "w", device="cpu")


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    """weights_only=True: a checkpoint that would run code on load is rejected."""
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "f": os.system}, path)
    with pytest.raises(WeightsFormatError, match="weights-only"):
        read_state_dict(path)


def test_tiny_random_refuses_weights_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synthetic"):
        load_model("tiny-random", weights_dir=tmp_path)


_CACHE_SCRIPT = """
import dataclasses, json, sys
from cxr_explorer.retrieval.models import build_model
from cxr_explorer.retrieval.models.weights import WeightsChecksumError, WeightsNotFoundError
from tests.helpers.released_layout import small_spec
spec = dataclasses.replace(small_spec(sys.argv[1]), image_md5=sys.argv[2])
try:
    m = build_model(spec, device="cpu")
    print(json.dumps({"ok": True, "identity": m.identity.to_dict()}))
except (WeightsChecksumError, WeightsNotFoundError) as exc:
    print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
"""


def _run_offline(hf_home: Path, name: str, md5: str) -> dict:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT, name, md5], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh Python process loads torch and transformers
def test_offline_hf_cache_loads_through_the_download_path(tmp_path: Path) -> None:
    spec = small_spec()
    snapshot = write_hf_cache(spec, tmp_path / "hf")
    assert spec.image_file is not None
    md5 = __import__("hashlib").md5((snapshot / spec.image_file).read_bytes()).hexdigest()
    result = _run_offline(tmp_path / "hf", "biovil", md5)
    assert result["ok"], result
    assert result["identity"]["source"] == "hf-cache" and result["identity"]["verified"]
    assert result["identity"]["revision"] == "v1.1"


@pytest.mark.slow  # a fresh Python process loads torch and transformers
def test_offline_hf_cache_refuses_wrong_checksum(tmp_path: Path) -> None:
    write_hf_cache(small_spec(), tmp_path / "hf")
    released = get_spec("biovil").image_md5
    assert released is not None
    result = _run_offline(tmp_path / "hf", "biovil", released)
    assert result == {"ok": False, "error": "WeightsChecksumError", "message": result["message"]}
    assert released in result["message"] and "md5" in result["message"]


@pytest.mark.slow  # a fresh Python process loads torch and transformers
def test_offline_without_cache_says_how_to_get_weights(tmp_path: Path) -> None:
    result = _run_offline(tmp_path / "empty", "biovil", "0" * 32)
    assert result["error"] == "WeightsNotFoundError"
    assert "--weights-dir" in result["message"] and "HF_HUB_OFFLINE" in result["message"]


@pytest.mark.parametrize("name", ["biovil", "biovil-t"])
def test_weights_dir_with_each_released_text_layout_loads(tmp_path: Path, name: str) -> None:
    """BioViL-T's config.json has no model_type and its tokenizer_config says BertTokenizer: both must load."""
    spec = write_repo_dir(small_spec(name), tmp_path / "w")
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    assert ("model_type" in cfg) == (name == "biovil")
    model = build_model(spec, weights_dir=tmp_path / "w", device="cpu")
    assert model.identity.verified and model.embed_texts(["no pneumothorax"]).shape == (1, 128)


@pytest.mark.parametrize(("field", "value", "file"), [
    ("model_type", "roberta", "config.json"),
    ("architectures", ["BertForMaskedLM"], "config.json"),  # CXR-BERT-general: no projection head
    ("projection_size", 256, "config.json"),
    ("hidden_size", "768", "config.json"),
    ("hidden_act", "relu", "config.json"),
    ("tokenizer_class", "RobertaTokenizer", "tokenizer_config.json"),
])  # fmt: skip
def test_misfit_config_names_file_and_field(tmp_path: Path, field: str, value: object, file: str) -> None:
    spec = write_repo_dir(small_spec("biovil-t"), tmp_path / "w")
    path = tmp_path / "w" / file
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(WeightsFormatError) as info:
        build_model(spec, weights_dir=tmp_path / "w", device="cpu")
    assert str(path) in str(info.value) and repr(field) in str(info.value)


def test_misfit_checkpoints_name_file_and_key(tmp_path: Path) -> None:
    spec = write_repo_dir(small_spec("biovil-t"), tmp_path / "w")
    image = tmp_path / "w" / str(spec.image_file)
    state = read_state_dict(image)
    state["encoder.vit_pooler.type_embed"] = torch.zeros(3, 1, 256)
    torch.save(state, image)
    with pytest.raises(WeightsFormatError, match=r"biovil_t_image_model_proj_size_128.pt.*'encoder.vit_pooler."
                       r"type_embed' has shape \(3, 1, 256\), expected \(2, 1, 256\)"):
        build_model(dataclasses.replace(spec, image_md5="x"), weights_dir=tmp_path / "w", device="cpu")
    spec = write_repo_dir(small_spec("biovil-t"), tmp_path / "w2")
    text = tmp_path / "w2" / "pytorch_model.bin"
    state = read_state_dict(text)
    del state["cls_projection_head.dense_to_output.bias"]
    torch.save(state, text)
    with pytest.raises(WeightsFormatError, match=r"pytorch_model.bin.*'cls_projection_head.dense_to_output.bias' "
                       "is missing"):
        build_model(spec, weights_dir=tmp_path / "w2", device="cpu")

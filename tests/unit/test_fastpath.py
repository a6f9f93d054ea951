"""bf16 with matmul weights cast once gives bit-identical outputs to autocast over fp32 weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from cxr_explorer.retrieval.models import load_model
from cxr_explorer.retrieval.models.fastpath import bf16_matmul_weights, int8_dynamic


def _autocast_reference(module: Callable[..., Any], *args: Any) -> Any:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return module(*args)


def test_pre_cast_weights_are_bit_identical_to_autocast() -> None:
    model = load_model("tiny-random", device="cpu")
    ids, mask = model.tokenizer(["small left pleural effusion", "no pneumothorax"])
    ref_text = _autocast_reference(model.text_model.project, ids, mask).float()
    x = torch.rand(2, 3, model.spec.crop, model.spec.crop, generator=torch.Generator().manual_seed(0))
    ref_img = _autocast_reference(model.image_model, x.contiguous(memory_format=torch.channels_last), None)
    cast = bf16_matmul_weights(model.text_model)
    assert next(cast.cls_projection_head.parameters()).dtype == torch.bfloat16
    assert next(model.text_model.parameters()).dtype == torch.float32  # the original is untouched
    assert torch.equal(_autocast_reference(cast.project, ids, mask).float(), ref_text)
    model.precision = "bf16"  # an fp32 model switched to bf16 uses cast copies
    got = model.embed_texts(["small left pleural effusion", "no pneumothorax"], normalize=False)
    assert torch.equal(got, ref_text)
    assert torch.equal(model.encode_images(x).global_emb,
                       torch.nn.functional.normalize(ref_img.global_emb.float(), dim=-1))


def test_loaded_as_bf16_casts_in_place_and_refuses_fp32() -> None:
    model = load_model("tiny-random", device="cpu", precision="bf16")
    assert model.text_model.cls_projection_head.dense_to_output.weight.dtype == torch.bfloat16
    assert model.text_model.bert.embeddings.word_embeddings.weight.dtype == torch.float32
    assert model.embed_texts(["no effusion"]).dtype == torch.float32
    model.precision = "fp32"
    with pytest.raises(RuntimeError, match="loaded in bf16"):
        model.embed_texts(["no effusion"])


def test_int8_copy_quantises_linear_layers_only() -> None:
    model = load_model("tiny-random", device="cpu")
    q = int8_dynamic(model.text_model)
    assert any("quantized" in type(m).__module__ for m in q.modules())
    assert not any(type(m) is torch.nn.Linear for m in q.modules())
    ids, mask = model.tokenizer(["no effusion"])
    with torch.inference_mode():
        a, b = model.text_model(ids, mask), q(ids, mask)
    assert float((a * b).sum()) > 0.9  # close to fp32, not equal

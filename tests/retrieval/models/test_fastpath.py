"""bf16 with matmul weights cast once gives bit-identical outputs to autocast over fp32 weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from cxr_explorer.retrieval.models import load_model
from cxr_explorer.retrieval.models.fastpath import (
    PackedLinear,
    bf16_matmul_weights,
    can_pack,
    pack_bf16_linears,
)
from cxr_explorer.retrieval.models.text_fast import FastTextTower


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
    if isinstance(model.towers()[1], FastTextTower):  # GELU in its matmul rounds once: close, not equal
        assert torch.allclose(got, ref_text, atol=0.06, rtol=0)  # test_text_fast.FUSED_ATOL
    else:
        assert torch.equal(got, ref_text)
    assert torch.equal(model.encode_images(x).global_emb,
                       torch.nn.functional.normalize(ref_img.global_emb.float(), dim=-1))


def test_loaded_as_bf16_casts_in_place_and_refuses_fp32() -> None:
    model = load_model("tiny-random", device="cpu", precision="bf16")
    assert model.text_model.cls_projection_head.dense_to_output.weight.dtype == torch.bfloat16
    text = model.text_model
    embeddings = text.embeddings if isinstance(text, FastTextTower) else text.bert.embeddings
    assert embeddings.word_embeddings.weight.dtype == torch.float32
    assert model.embed_texts(["no effusion"]).dtype == torch.float32
    model.precision = "fp32"
    with pytest.raises(RuntimeError, match="loaded in bf16"):
        model.embed_texts(["no effusion"])


needs_packing = pytest.mark.skipif(not can_pack(torch.device("cpu")),
                                   reason="this CPU lacks native bf16 (AVX512-BF16/AMX) or torch lacks oneDNN: "
                                          "the bf16 query path keeps plain bf16 Linears here")
TEXTS = ["small left pleural effusion", "no pneumothorax", "mild cardiomegaly with bilateral basilar atelectasis"]


@needs_packing
def test_packed_text_tower_matches_the_plain_bf16_tower() -> None:
    model = load_model("tiny-random", device="cpu")
    plain, packed = bf16_matmul_weights(model.text_model), pack_bf16_linears(model.text_model)
    assert not any(type(m) is torch.nn.Linear for m in packed.modules())
    assert sum(isinstance(m, PackedLinear) for m in packed.modules()) == sum(
        type(m) is torch.nn.Linear for m in model.text_model.modules())
    ids, mask = model.tokenizer(TEXTS)  # padded batch: the mask path too
    want = _autocast_reference(plain.project, ids, mask).float()
    got = _autocast_reference(packed.project, ids, mask).float()
    assert got.shape == want.shape == (3, model.spec.joint_dim)
    assert torch.allclose(got, want, atol=1e-2, rtol=0)  # bit-identical on an AMX CPU; other kernels may round apart
    fp32 = _autocast_reference(model.text_model.project, ids, mask)  # autocast over fp32 Linears is bf16 too
    assert torch.allclose(got, fp32.float(), atol=1e-2, rtol=0)


@needs_packing
def test_bf16_model_packs_its_text_tower_and_embeds_as_the_fp32_model() -> None:
    bf16 = load_model("tiny-random", device="cpu", precision="bf16")
    fp32 = load_model("tiny-random", device="cpu", precision="fp32")
    assert any(isinstance(m, PackedLinear) for m in bf16.text_model.modules())
    assert not any(isinstance(m, PackedLinear) for m in fp32.text_model.modules())
    got, want = bf16.embed_texts(TEXTS), fp32.embed_texts(TEXTS)
    assert got.dtype == torch.float32
    cos = (got * want).sum(dim=1)
    assert float(cos.min()) > 0.999, cos  # bf16 rounding only
    one_by_one = torch.cat([bf16.embed_texts([t]) for t in TEXTS])  # no padding vs padded batch
    assert torch.allclose(one_by_one, got, atol=2e-2, rtol=0)


@needs_packing
def test_packed_linear_keeps_shape_and_bias() -> None:
    lin = torch.nn.Linear(8, 5)
    packed = PackedLinear(lin)
    x = torch.randn(2, 3, 8)
    with torch.inference_mode():
        want = torch.nn.functional.linear(x.bfloat16(), lin.weight.bfloat16(), lin.bias.bfloat16())
        got = packed(x)
    assert got.shape == (2, 3, 5) and got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), want.float(), atol=1e-2, rtol=0)

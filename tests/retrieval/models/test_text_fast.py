"""The lean bf16 text forward (retrieval.models.text_fast) computes what the plain tower computes in bf16."""

from __future__ import annotations

import logging
from typing import cast

import pytest
import torch

from cxr_explorer.retrieval.models import VLModel, load_model
from cxr_explorer.retrieval.models.fastpath import PackedLinear, can_pack, pack_bf16_linears
from cxr_explorer.retrieval.models.text_fast import FastBertLayer, FastTextTower
from cxr_explorer.retrieval.models.text_model import CXRBertModel

pytestmark = pytest.mark.skipif(not can_pack(torch.device("cpu")),
                                reason="this CPU lacks native bf16 (AVX512-BF16/AMX) or torch lacks oneDNN: the bf16 "
                                       "query path keeps the plain tower here")
TEXTS = ["no pneumothorax", "mild cardiomegaly with bilateral basilar atelectasis and a small left effusion",
         "left base opacity"]


def _plain() -> tuple[VLModel, CXRBertModel]:
    """A tiny fp32 model and its plain text tower."""
    model = load_model("tiny-random", device="cpu")
    assert isinstance(model.text_model, CXRBertModel)
    return model, model.text_model


def _bf16(module: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return module.project(ids, mask).float()  # type: ignore[operator]


#: The fused forward against the plain bf16 tower: the GELU on the matmul's fp32 accumulator rounds once instead of
#: twice, so the projected embeddings [B, P] (values of order 1) may differ by a few bf16 steps.
FUSED_ATOL = 0.06
FUSED_MIN_COSINE = 0.9995


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


@pytest.mark.parametrize("texts", [TEXTS[:1], TEXTS], ids=["one query, no mask", "padded batch"])
def test_fast_tower_equals_the_packed_plain_tower(texts: list[str]) -> None:
    model, plain = _plain()
    fast = FastTextTower(plain)
    ids, mask = model.tokenizer(texts)
    assert ids.shape[0] == len(texts) and (len(texts) == 1 or not bool(mask.all()))
    want = _bf16(pack_bf16_linears(plain), ids, mask)
    got = _bf16(fast, ids, mask)
    assert got.shape == want.shape == (len(texts), model.spec.joint_dim)
    assert torch.allclose(got, want, atol=FUSED_ATOL, rtol=0), (got - want).abs().max()
    assert float(_cosine(got, want).min()) > FUSED_MIN_COSINE
    with torch.inference_mode():
        fp32 = torch.nn.functional.normalize(plain.project(ids, mask), dim=1)
    cos = (torch.nn.functional.normalize(got, dim=1) * fp32).sum(dim=1)
    assert float(cos.min()) > 0.999, cos


def test_fast_tower_shares_embeddings_and_packs_every_matmul() -> None:
    _, plain = _plain()
    fast = FastTextTower(plain)
    assert fast.embeddings is plain.bert.embeddings  # shared, not copied
    assert not any(type(m) is torch.nn.Linear for m in fast.modules())
    layers, hidden = int(plain.config.num_hidden_layers), int(plain.config.hidden_size)
    assert sum(isinstance(m, PackedLinear) for m in fast.modules()) == 4 * layers + 2  # qkv, out, ffn in/out; head
    qkv = [m for m in fast.modules() if isinstance(m, PackedLinear)][0]
    assert (qkv.in_features, qkv.out_features) == (hidden, 3 * hidden)


def test_bf16_models_use_the_fast_tower_and_agree_with_fp32(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cxr_explorer.retrieval.models.api"):
        loaded_bf16 = load_model("tiny-random", device="cpu", precision="bf16")
    said = [r.getMessage() for r in caplog.records if "text path" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("bf16 text path: bf16-fused-gelu") and "warmed up in" in said[0]
    switched = load_model("tiny-random", device="cpu")
    assert switched.text_path == "fp32" and loaded_bf16.text_path == "bf16-fused-gelu"
    want = switched.embed_texts(TEXTS)  # fp32
    switched.precision = "bf16"
    assert isinstance(loaded_bf16.text_model, FastTextTower) and isinstance(switched.towers()[1], FastTextTower)
    for model in (loaded_bf16, switched):
        got = model.embed_texts(TEXTS)
        assert got.dtype == torch.float32 and float((got * want).sum(dim=1).min()) > 0.999
    unnormalised = loaded_bf16.embed_texts(TEXTS, normalize=False)
    assert torch.allclose(torch.nn.functional.normalize(unnormalised, dim=1), loaded_bf16.embed_texts(TEXTS))


def test_fused_layer_runs_gelu_as_a_post_op() -> None:
    _, plain = _plain()
    layer = cast(FastBertLayer, FastTextTower(plain).layers[0])
    x = torch.randn(1, 5, layer.ffn_in.in_features)
    with torch.inference_mode():
        plain_out = layer.ffn_in(x)
        assert torch.allclose(layer.ffn_in.gelu(x).float(), torch.nn.functional.gelu(plain_out.float()), atol=2e-2)
    assert layer.ffn_in.gelu(x).dtype == torch.bfloat16


def _text_of_tokens(model: VLModel, n: int) -> str:
    """A text of exactly ``n`` tokens ([CLS] and [SEP] included) under ``model``'s tokenizer."""
    words = ("effusion " * n).split()
    text = " ".join(words[:n - 2])
    assert model.tokenizer.count_tokens(text) == n
    return text


#: Token counts at and around the edges of the buckets a shape-specialised graph would use, up to the model's limit.
LENGTHS = (3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512)


def test_every_query_length_up_to_the_limit_through_the_shipped_path() -> None:
    model = load_model("tiny-random", device="cpu", precision="bf16")
    reference = load_model("tiny-random", device="cpu")  # the same seeded weights, plain fp32 tower
    assert isinstance(model.text_model, FastTextTower) and model.text_path == "bf16-fused-gelu"
    texts = [_text_of_tokens(model, n) for n in LENGTHS]
    for text in texts:  # one query at a time, as the query path encodes: no mask, every length
        got, want = model.embed_texts([text]), reference.embed_texts([text])
        assert got.shape == (1, model.spec.joint_dim) and bool(torch.isfinite(got).all())
        assert float(_cosine(got, want).min()) > 0.999, model.tokenizer.count_tokens(text)
    batch = model.embed_texts(texts)  # and all together: padded to 512 with a mask
    assert float(_cosine(batch, reference.embed_texts(texts)).min()) > 0.999
    from cxr_explorer.retrieval.models.text_model import TextInputError

    with pytest.raises(TextInputError, match="at most 512"):
        model.embed_texts([_text_of_tokens(model, 513)])

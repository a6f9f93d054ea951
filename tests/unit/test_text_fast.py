"""The lean bf16 text forward (retrieval.models.text_fast) computes what the plain tower computes in bf16."""

from __future__ import annotations

import pytest
import torch

from cxr_explorer.retrieval.models import VLModel, load_model
from cxr_explorer.retrieval.models.fastpath import PackedLinear, can_pack, pack_bf16_linears
from cxr_explorer.retrieval.models.text_fast import FastTextTower
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


@pytest.mark.parametrize("texts", [TEXTS[:1], TEXTS], ids=["one query, no mask", "padded batch"])
def test_fast_tower_equals_the_packed_plain_tower(texts: list[str]) -> None:
    model, plain = _plain()
    fast = FastTextTower(plain)
    ids, mask = model.tokenizer(texts)
    assert ids.shape[0] == len(texts) and (len(texts) == 1 or not bool(mask.all()))
    want = _bf16(pack_bf16_linears(plain), ids, mask)
    got = _bf16(fast, ids, mask)
    assert got.shape == want.shape == (len(texts), model.spec.joint_dim)
    assert torch.allclose(got, want, atol=1e-2, rtol=0)  # bit-identical on an AMX CPU; allow other kernels' rounding
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


def test_bf16_models_use_the_fast_tower_and_agree_with_fp32() -> None:
    loaded_bf16 = load_model("tiny-random", device="cpu", precision="bf16")
    switched = load_model("tiny-random", device="cpu")
    want = switched.embed_texts(TEXTS)  # fp32
    switched.precision = "bf16"
    assert isinstance(loaded_bf16.text_model, FastTextTower) and isinstance(switched.towers()[1], FastTextTower)
    for model in (loaded_bf16, switched):
        got = model.embed_texts(TEXTS)
        assert got.dtype == torch.float32 and float((got * want).sum(dim=1).min()) > 0.999
    unnormalised = loaded_bf16.embed_texts(TEXTS, normalize=False)
    assert torch.allclose(torch.nn.functional.normalize(unnormalised, dim=1), loaded_bf16.embed_texts(TEXTS))

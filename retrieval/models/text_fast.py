"""CXR-BERT's projected [CLS] embedding by a lean inference forward over the same weights (the bf16 CPU query path).

``transformers.BertModel`` spends a noticeable share of a 16-token query in Python around 74 small matmuls. This
forward computes the same function with fewer, larger calls:

* q, k and v of each layer in one fused Linear (768 -> 2304) instead of three;
* every Linear packed once for oneDNN (:class:`retrieval.models.fastpath.PackedLinear`);
* no work whose result is thrown away: the embedding needs only the last layer's [CLS] row, so that layer's attention
  output, LayerNorms and feed-forward run on one row per text (keys and values still come from every token);
* no mask at all when no text in the batch is padded (one query), a boolean key mask otherwise;
* the feed-forward GELU computed in its matmul's epilogue (:meth:`PackedLinear.gelu`: on the fp32 accumulator, one
  bf16 rounding instead of two, no separate pass).

A 16-token query is bound by streaming the 170 MB of bf16 Linear weights from memory, not by arithmetic: everything
here removes work around those matmuls, none of it can remove the matmuls.

Run under bf16 autocast like the plain tower; the result equals ``CXRBertModel.project`` up to bf16 rounding
(``tests/retrieval/models/test_text_fast.py``). The tower's embeddings and their LayerNorms are shared, not copied; the
Linears (and the small projection head) are packed bf16 copies, so a model loaded in bf16 drops the plain tower's
Linears.
"""

from __future__ import annotations

import time
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.bert.modeling_bert import BertCrossAttention, BertEmbeddings, BertLayer, BertSelfAttention

from cxr_explorer.retrieval.models.fastpath import PackedLinear, pack_bf16_linears
from cxr_explorer.retrieval.models.text_model import BertProjectionHead, CXRBertModel


def fused_qkv(attention: BertSelfAttention | BertCrossAttention) -> nn.Linear:
    """One Linear [3H, H] holding a BertSelfAttention's query, key and value projections, in that order."""
    parts = (attention.query, attention.key, attention.value)
    fused = nn.Linear(parts[0].in_features, 3 * parts[0].out_features)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([p.weight.float() for p in parts]))
        fused.bias.copy_(torch.cat([p.bias.float() for p in parts]))
    return fused


class FastBertLayer(nn.Module):
    """One post-LayerNorm BERT layer: fused packed qkv, SDPA, packed output and feed-forward Linears."""

    def __init__(self, layer: BertLayer, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = PackedLinear(fused_qkv(layer.attention.self))
        self.attn_out = PackedLinear(layer.attention.output.dense)
        self.attn_norm = layer.attention.output.LayerNorm
        self.ffn_in = PackedLinear(layer.intermediate.dense)
        self.ffn_out = PackedLinear(layer.output.dense)
        self.ffn_norm = layer.output.LayerNorm

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor | None, cls_only: bool = False) -> torch.Tensor:
        """h [B, T, H] -> [B, T, H], or [B, 1, H] (the [CLS] row only) when ``cls_only``.

        ``key_mask`` [B, 1, 1, T] bool (True = attend) or None when no token is padding."""
        b, t, width = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if cls_only:
            q, h = q[:, :, :1], h[:, :1]
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        ctx = ctx.transpose(1, 2).reshape(b, h.shape[1], width)
        a = self.attn_norm(self.attn_out(ctx) + h)  # bf16 matmul output + fp32 residual: fp32
        return self.ffn_norm(self.ffn_out(self.ffn_in.gelu(a)) + a)


class FastTextTower(nn.Module):
    """Inference-only stand-in for a :class:`CXRBertModel` with ``project`` and ``forward`` (bf16 autocast, CPU)."""

    def __init__(self, tower: CXRBertModel) -> None:
        super().__init__()
        bert = tower.bert
        self.embeddings: BertEmbeddings = bert.embeddings
        self.layers = nn.ModuleList(FastBertLayer(cast(BertLayer, layer), tower.config.num_attention_heads)
                                    for layer in bert.encoder.layer)
        self.cls_projection_head: BertProjectionHead = pack_bf16_linears(tower.cls_projection_head)

    def _embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, H]: word + absolute position + token type 0, LayerNorm (BertEmbeddings' sum)."""
        e = self.embeddings
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        types = torch.zeros_like(input_ids)
        x = e.word_embeddings(input_ids) + e.token_type_embeddings(types)
        return e.LayerNorm(x + e.position_embeddings(positions)[None])

    def project(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T] and mask [B, T] -> unnormalised projected [CLS] embeddings [B, P]."""
        key_mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        h = self._embed(input_ids)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, key_mask, cls_only=i == last)
        return self.cls_projection_head(h[:, 0, :])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] ids and mask -> L2-normalised [B, P]."""
        return F.normalize(self.project(input_ids, attention_mask), dim=1)

    def warm_up(self, tokens: int = 16) -> float:
        """Seconds to run one unpadded query [1, tokens] and one padded pair [2, tokens] (ids of [PAD], 0): oneDNN
        generates its AMX/AVX-512 kernels on a tower's first calls, so a load that warms the tower keeps that
        one-off cost off the user's first query."""
        start = time.perf_counter()
        ids = torch.zeros(2, tokens, dtype=torch.long)
        mask = torch.ones_like(ids)
        mask[1, tokens // 2:] = 0
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            self.project(ids[:1], mask[:1])
            self.project(ids, mask)
        return time.perf_counter() - start

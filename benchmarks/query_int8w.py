"""int8 *weights*, bf16 activations: the query tower's Linears with per-output-channel int8 weights (a benchmark
variant, not shipped).

A 16-token query streams 170 MB of bf16 Linear weights and is bound by that (``benchmarks.query_profile``); int8
weights halve the bytes. Unlike ``int8`` dynamic quantisation (activations rounded to int8 per tensor, which lost
recall), only the weights are rounded here (symmetric, one scale per output channel) and every activation stays
bf16, so the error is the weight rounding alone. ``int8w`` runs eagerly through ``aten._weight_int8pack_mm`` (a
slow reference kernel: for the numerics, scored for search by the precision section); ``compiled-int8w`` is the same
tower through torch.compile (inductor, ``max-autotune-no-cudagraphs``), which lowers that op to an AMX micro-GEMM
that dequantises weight tiles in registers: the speed a shipped version would have, after its compile.
"""

from __future__ import annotations

from typing import Any

import torch
from cxr_explorer.retrieval.models.text_fast import FastTextTower
from torch import nn

from benchmarks.query_encode import unpacked_fast


class Int8WeightLinear(nn.Module):
    """A Linear [out, in] with int8 weights and a bf16 scale per output channel: [..., in] -> [..., out] bf16."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12)
        self.register_buffer("weight", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        bias = linear.bias.detach() if linear.bias is not None else torch.zeros(linear.out_features)
        self.register_buffer("bias", bias.to(torch.bfloat16))
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., in] -> [..., out] bf16."""
        flat = x.to(torch.bfloat16).reshape(-1, x.shape[-1])
        y = torch.ops.aten._weight_int8pack_mm(flat, self.weight, self.scale) + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def int8_weight_tower(fp32: Any) -> FastTextTower:
    """The lean forward (``fusion="none"``) with each BERT layer's four Linears as :class:`Int8WeightLinear` (the small
    projection head stays bf16); run under bf16 autocast."""
    fast = unpacked_fast(fp32)
    for layer in fast.layers:
        for name in ("qkv", "attn_out", "ffn_in", "ffn_out"):
            setattr(layer, name, Int8WeightLinear(getattr(layer, name)))
    return fast


def compiled_int8w(fp32: Any, ids: torch.Tensor, mask: torch.Tensor) -> Any:
    """:func:`int8_weight_tower` through torch.compile (max-autotune, weights frozen), compiled for ``ids``' shape."""
    import torch._inductor.config as inductor

    from benchmarks.query_encode import _Project, graph_encoder

    with inductor.patch(freezing=True):
        fn = torch.compile(_Project(int8_weight_tower(fp32)).eval(), dynamic=False,
                           mode="max-autotune-no-cudagraphs")
        graph_encoder(fn, True, ids, mask)()  # compiles and autotunes on the first call
    return fn

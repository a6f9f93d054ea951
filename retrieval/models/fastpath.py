"""bf16 without per-call weight casts: matmul weights stored in bf16 give bit-identical results under autocast.

Under ``torch.autocast(dtype=bfloat16)`` every ``Linear``/``Conv2d`` casts its fp32 weight (and bias) to bf16 on
*each* call: for BERT-base that is ~170 MB of weights re-read and rewritten per query, which on a 2-core CPU costs
as much as the bf16 matmuls save (a 16-token query: autocast 1.03x the fp32 time, pre-cast weights 0.52x, measured
side by side by ``benchmarks.query_encode``). Casting those weights once gives the very same bf16 operands, so the
outputs are bit-identical to autocast with fp32 weights (``tests/retrieval/models/test_fastpath.py``). LayerNorm,
embeddings and BatchNorm stay fp32, as autocast keeps them.

On a CPU, a bf16 ``Linear`` still pays a weight reorder per call: oneDNN's AMX/AVX512-BF16 kernels read weights in
a blocked layout, and ``F.linear`` hands them the plain one. :func:`pack_bf16_linears` reorders each Linear weight
once (:class:`PackedLinear`, oneDNN's packed-weight linear, the op inductor's weight prepacking emits): the same bf16
operands and, on this CPU, bit-identical outputs (``tests/retrieval/models/test_fastpath.py`` allows 1e-2 absolute for
other kernels), in less time than the plain bf16 tower (``benchmarks.query_encode``).
"""

from __future__ import annotations

import copy
import logging
from typing import TypeVar

import torch
from torch import nn

log = logging.getLogger(__name__)

M = TypeVar("M", bound=nn.Module)
#: Module types whose weights autocast casts to bf16 on every call.
MATMUL_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)


def bf16_matmul_weights(module: M, in_place: bool = False) -> M:
    """``module`` (or a deep copy) with every Linear/Conv2d weight and bias in bf16; to be run under bf16 autocast."""
    out = module if in_place else copy.deepcopy(module)
    for sub in out.modules():
        if isinstance(sub, MATMUL_MODULES):
            sub.to(torch.bfloat16)
    return out


class PackedLinear(nn.Module):
    """A Linear in bf16 whose weight [out, in] is held in oneDNN's packed layout (CPU only; inference only).

    ``weight`` is the packed bf16 tensor (an opaque ``torch._mkldnn`` layout: not for saving or copying); ``forward``
    takes [..., in] of any float dtype and returns [..., out] in bf16, as a Linear does under bf16 autocast.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().to(torch.bfloat16)
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(w, 1))
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., in] -> [..., out] bf16."""
        return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), self.weight, self.bias, "none", [], "")

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        """[..., in] -> GELU(x W^T + b) [..., out] bf16: the exact (erf) GELU fused into the matmul (a oneDNN
        post-op, applied to the fp32 accumulator before the one rounding to bf16, where ``F.gelu(self(x))`` rounds
        twice and makes a second pass over the activations)."""
        return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), self.weight, self.bias, "gelu", [], "none")


def can_pack(device: torch.device) -> bool:
    """True where :class:`PackedLinear` runs: a CPU device with oneDNN and native bf16 (AVX512-BF16 or AMX)."""
    from cxr_explorer.retrieval.models.precision import native_bf16

    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise") and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
            and native_bf16(device))


def pack_bf16_linears(module: M, in_place: bool = False) -> M:
    """``module`` (or a deep copy) with every ``nn.Linear`` replaced by a :class:`PackedLinear` and every Conv2d
    weight in bf16 (:func:`bf16_matmul_weights`); to be run under bf16 autocast on a CPU where :func:`can_pack`.

    Where this torch build lacks the packed op (it raises at packing), the module keeps plain bf16 Linears."""
    out = bf16_matmul_weights(module, in_place)
    targets = [(parent, name, child) for parent in out.modules() for name, child in parent.named_children()
               if type(child) is nn.Linear]
    try:
        packed = [PackedLinear(child) for _, _, child in targets]
    except (RuntimeError, AttributeError) as exc:  # a torch without oneDNN's packed linear: plain bf16 it is
        log.warning("bf16 weight packing unavailable (%s); using plain bf16 Linears", exc)
        return out
    for (parent, name, _), new in zip(targets, packed, strict=True):
        setattr(parent, name, new)
    return out

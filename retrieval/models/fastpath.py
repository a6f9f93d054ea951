"""bf16 without per-call weight casts: matmul weights stored in bf16 give bit-identical results under autocast.

Under ``torch.autocast(dtype=bfloat16)`` every ``Linear``/``Conv2d`` casts its fp32 weight (and bias) to bf16 on
*each* call: for BERT-base that is ~170 MB of weights re-read and rewritten per query, which on a 2-core CPU costs
as much as the bf16 matmuls save (a 16-token query: autocast 1.03x the fp32 time, pre-cast weights 0.52x, measured
side by side by ``benchmarks.query_encode``). Casting those weights once gives the very same bf16 operands, so the
outputs are bit-identical to autocast with fp32 weights (``tests/unit/test_fastpath.py``). LayerNorm, embeddings and
BatchNorm stay fp32, as autocast keeps them.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn

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


def int8_dynamic(module: M) -> M:
    """A deep copy with Linear layers dynamically quantised to int8 (CPU only; weights int8, activations per call).

    Tried for the query path (``benchmarks.query_encode``): used only where it keeps recall@10 >= 0.99 vs fp32.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notice (torchao); the API is still supported
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(module), {nn.Linear}, dtype=torch.qint8)

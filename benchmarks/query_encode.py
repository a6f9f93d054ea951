"""Text-encode latency of one 16-token query per precision and thread count, interleaved round by round.

Variants (same weights): ``fp32``; ``bf16-autocast`` (autocast over fp32 weights: every Linear weight re-cast per
call, the old bf16 path); ``bf16`` (matmul weights cast once, :mod:`retrieval.models.fastpath`, what
``VLModel.embed_texts`` now does at bf16: bit-identical to bf16-autocast); ``bf16-full`` (the whole tower in bf16,
no autocast: embeddings, LayerNorms and the residual stream too); ``int8`` (dynamic int8 Linear layers);
``int8-ffn+bf16`` (int8 feed-forward Linears only, bf16 attention). Their search agreement with fp32 queries is
the ``precision`` section's ``search_query_variants_vs_fp32`` (a variant is usable only at recall@10 >= 0.99).
Each at 1 and 2 torch threads. Medians of ``rounds`` rounds; ratios are to fp32 at the same thread count, measured in
the same rounds, so a busy neighbour slows all variants alike.

    .venv/bin/python -m benchmarks.run --only query_encode
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from benchmarks.encoders import query_of_tokens
from cxr_explorer.retrieval.models.fastpath import M, bf16_matmul_weights, int8_dynamic
from cxr_explorer.retrieval.models.precision import native_bf16, query_precision


def int8_ffn_bf16(tower: M) -> M:
    """A copy with each BERT layer's feed-forward Linears (intermediate.dense, output.dense: 2/3 of the weights)
    dynamically quantised to int8 and the other Linears in bf16 (run under bf16 autocast)."""
    import copy
    import warnings

    ffn = {n for n, m in tower.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-2:] in
           (["intermediate", "dense"], ["output", "dense"]) and ".attention." not in n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notice
        out = torch.ao.quantization.quantize_dynamic(copy.deepcopy(tower), ffn, dtype=torch.qint8)
    return bf16_matmul_weights(out, in_place=True)


def towers(model: Any) -> dict[str, tuple[Any, bool]]:
    """name -> (text tower, run under bf16 autocast); the same weights in every variant."""
    import copy

    fp32 = model.text_model
    return {"fp32": (fp32, False), "bf16-autocast": (fp32, True), "bf16": (bf16_matmul_weights(fp32), True),
            "bf16-full": (copy.deepcopy(fp32).to(torch.bfloat16), False), "int8": (int8_dynamic(fp32), False),
            "int8-ffn+bf16": (int8_ffn_bf16(fp32), True)}


def encoder(tower: Any, autocast: bool, ids: torch.Tensor, mask: torch.Tensor) -> Callable[[], torch.Tensor]:
    """A call encoding ``ids``/``mask`` [B, T] once: unnormalised [B, D] float32."""
    def call() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return tower.project(ids, mask).float()
    return call


def _variants(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """name -> a call encoding the query once (unnormalised [1, D])."""
    return {name: encoder(tower, autocast, ids, mask) for name, (tower, autocast) in towers(model).items()}


def run_query_encode(model: Any, rounds: int = 15, tokens: int = 16) -> dict[str, Any]:
    """p50 ms per (threads, variant), ratio to fp32 at the same threads, and the variant the query path uses."""
    query = query_of_tokens(model.tokenizer, tokens)
    ids, mask = model.tokenizer([query])
    calls = _variants(model, ids, mask)
    before = torch.get_num_threads()
    table: dict[str, dict[str, Any]] = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            times: dict[str, list[float]] = {k: [] for k in calls}
            for call in calls.values():
                call(), call()  # warm-up
            for _ in range(rounds):
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - t0)
            p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
            table[str(threads)] = {k: {"p50_ms": round(v, 2), "ratio_to_fp32": round(v / p50["fp32"], 3)}
                                   for k, v in p50.items()}
    finally:
        torch.set_num_threads(before)
    cpu = torch.device("cpu")
    return {"query_tokens": tokens, "rounds": rounds, "threads": table, "native_bf16": native_bf16(cpu),
            "query_path": {"bf16_bundle": query_precision("bf16", cpu), "fp32_bundle": query_precision("fp32", cpu)},
            "goal_p50_ms": 15.0, "note": "one query per call, batch 1, no padding; machine shared (loaded)"}

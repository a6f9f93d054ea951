"""Text-encode latency of one 16-token query per precision and thread count, interleaved round by round.

Variants (same weights): ``fp32``; ``bf16-autocast`` (autocast over fp32 weights: every Linear weight re-cast per
call, the old bf16 path); ``bf16`` (matmul weights cast once, :mod:`retrieval.models.fastpath`, what
``VLModel.embed_texts`` now does at bf16: bit-identical to bf16-autocast); ``int8`` (dynamic int8 Linear layers).
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

from benchmarks.encoders import query_of_tokens
from retrieval.models.fastpath import bf16_matmul_weights, int8_dynamic
from retrieval.models.precision import native_bf16, query_precision


def _variants(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """name -> a call encoding the query once (unnormalised [1, D])."""
    fp32, bf16, int8 = model.text_model, bf16_matmul_weights(model.text_model), int8_dynamic(model.text_model)

    def run(tower: Any, autocast: bool) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return tower.project(ids, mask).float()
        return call

    return {"fp32": run(fp32, False), "bf16-autocast": run(fp32, True), "bf16": run(bf16, True),
            "int8": run(int8, False)}


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

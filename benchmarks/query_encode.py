"""Text-encode latency of one 16-token query: the shipped bf16 path against fp32, interleaved round by round.

Rows (same weights): ``fp32`` (the plain tower); the shipped bf16 tower, named as ``VLModel.text_path`` names it
(``bf16-fused-gelu``: the lean forward of :mod:`retrieval.models.text_fast` with packed Linears and the GELU in its
matmul, on a native-bf16 CPU; else ``bf16``, Linears cast once); ``tokenize`` (``TextTokenizer.__call__``) and
``query-path`` (``VLModel.embed_texts([query])`` at bf16: tokenize + the shipped tower + normalise, what a user
waits for). Each at 1 and 2 torch threads: p50 and p95 of ``rounds`` rounds; ratios are p50 over fp32's at the same
thread count, measured in the same rounds, so a busy neighbour slows every row alike. ``cosine_to_fp32``: the shipped
tower's query embedding against fp32's.

    .venv/bin/python -m benchmarks.run --only query_encode
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from cxr_explorer.retrieval.models.precision import native_bf16, query_precision
from cxr_explorer.retrieval.models.text_model import TextTokenizer

Call = Callable[[], torch.Tensor]
T = TypeVar("T")


def query_of_tokens(tok: TextTokenizer, n: int) -> str:
    """A radiology phrase of exactly ``n`` tokens ([CLS] and [SEP] included) under ``tok``."""
    words = "small left pleural effusion with basilar atelectasis and mild cardiomegaly no pneumothorax".split() * 4
    for k in range(1, len(words)):
        text = " ".join(words[:k])
        if tok.count_tokens(text) >= n:
            assert tok.count_tokens(text) == n, "choose other words"
            return text
    raise ValueError("query too short")


def _at(model: Any, precision: str, fn: Callable[[], T]) -> T:
    """``fn()`` with ``model`` switched to ``precision`` for the call."""
    before, model.precision = model.precision, precision
    try:
        return fn()
    finally:
        model.precision = before


def _rows(model: Any, query: str) -> tuple[dict[str, Call], str]:
    """(row name -> call, the shipped bf16 tower's row name); the tower rows return unnormalised [1, D] float32."""
    ids, mask = model.tokenizer([query])

    def tower(precision: str) -> Call:
        def call() -> torch.Tensor:
            def run() -> torch.Tensor:
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    return model.towers()[1].project(ids, mask).float()
            return _at(model, precision, run)
        return call

    shipped: str = _at(model, "bf16", lambda: model.text_path)
    return {"fp32": tower("fp32"), shipped: tower("bf16"), "tokenize": lambda: model.tokenizer([query])[0],
            "query-path": lambda: _at(model, "bf16", lambda: model.embed_texts([query]))}, shipped


def _time(calls: dict[str, Call], rounds: int) -> dict[str, dict[str, float]]:
    """p50 / p95 ms of each call over ``rounds`` interleaved rounds (after two warm-up calls) and p50 / fp32's p50."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for call in calls.values():
        call(), call()
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {k: {"p50_ms": round(p50[k], 2), "p95_ms": round(float(np.percentile(v, 95)) * 1000, 2),
                "ratio_to_fp32": round(p50[k] / p50["fp32"], 3)} for k, v in times.items()}


def run_query_encode(model: Any, rounds: int = 15, tokens: int = 16) -> dict[str, Any]:
    """p50/p95 ms per (threads, row), ratio to fp32 at the same threads, and the variant the query path uses."""
    query = query_of_tokens(model.tokenizer, tokens)
    calls, shipped = _rows(model, query)
    ref = torch.nn.functional.normalize(calls["fp32"](), dim=1)
    cosine = round(float((torch.nn.functional.normalize(calls[shipped](), dim=1) * ref).sum()), 6)
    before = torch.get_num_threads()
    table: dict[str, dict[str, Any]] = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            table[str(threads)] = _time(calls, rounds)
    finally:
        torch.set_num_threads(before)
    cpu = torch.device("cpu")
    return {"query_tokens": tokens, "rounds": rounds, "threads": table, "cosine_to_fp32": {shipped: cosine},
            "native_bf16": native_bf16(cpu),
            "query_path": {"bf16_bundle": query_precision("bf16", cpu), "fp32_bundle": query_precision("fp32", cpu),
                           "bf16_variant": shipped},
            "goal_p50_ms": 15.0, "note": "one query per call, batch 1, no padding"}

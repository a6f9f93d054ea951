"""Where one query's text encode goes: torch.profiler per op kind, and the floor of each part, in one run.

For the shipped bf16 query tower (``retrieval.models.text_fast.FastTextTower``) at 1 and 2 torch threads:

* ``wall_ms``: p50 of the tower's forward alone (no profiler), interleaved with the floor rows below;
* ``ops_ms``: per query, the profiler's self CPU time per op kind (matmul = oneDNN's packed Linears; norm; gelu;
  attention; cast/copy; elementwise; other aten) over calls whose mean wall is ``profiled_wall_ms`` (the profiler
  adds a few microseconds per op), and ``dispatch_ms`` = that wall - the kernels' total: Python, dispatcher and
  framework time between kernels, which only fewer ops (or a captured graph) can remove; at 2 threads a kernel's
  self time includes its OpenMP wait for the other thread, so a busy neighbour shows up in the kernels;
* ``matmul_floor_ms``: the same packed Linears at the same shapes called back to back with nothing between (the
  weights stream from memory as in the forward): what the matmuls cost on this machine, the floor of any forward
  that keeps bf16 weights; ``weight_mb`` is what they read per query;
* ``tokenize_ms``: the wrapper a user's query goes through (checks, ``TextTokenizer.__call__``) and the raw
  tokenizer call alone (its floor), ``query_path_ms``: ``VLModel.embed_texts`` (tokenize + encode + normalise).

    .venv/bin/python -m benchmarks.run --only query_encode     (the ``profile`` key of that section)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from cxr_explorer.retrieval.models.fastpath import PackedLinear
from cxr_explorer.retrieval.models.text_fast import FastTextTower
from torch.profiler import ProfilerActivity, profile

#: op-name substrings -> kind (first match wins; profiler names such as ``mkldnn::_linear_pointwise``).
OP_KINDS: tuple[tuple[str, str], ...] = (
    ("_linear_pointwise", "matmul"), ("layer_norm", "norm"), ("gelu", "gelu"), ("scaled_dot_product", "attention"),
    ("copy_", "cast/copy"), ("_to_copy", "cast/copy"), ("add", "elementwise"), ("mul", "elementwise"))
Call = Callable[[], Any]


def op_kind(name: str) -> str:
    """The kind of a profiled op name (``other`` when none of :data:`OP_KINDS` matches)."""
    return next((kind for key, kind in OP_KINDS if key in name), "other")


def kernel_ms(call: Call, reps: int) -> tuple[float, dict[str, float]]:
    """(median wall ms of a call under the profiler, per call the profiler's self CPU ms per op kind): self time
    never double counts; the wall comes from the same calls, so a neighbour's load falls on both alike."""
    walls: list[float] = []
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            t0 = time.perf_counter()
            call()
            walls.append(time.perf_counter() - t0)
    kinds: dict[str, float] = {}
    for event in prof.key_averages():
        kinds[op_kind(event.key)] = kinds.get(op_kind(event.key), 0.0) + event.self_cpu_time_total / 1000 / reps
    ordered = {k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}
    return round(sum(walls) / len(walls) * 1000, 3), ordered


def matmul_chain(tower: FastTextTower, tokens: int) -> tuple[Call, float]:
    """(a call running every packed Linear of ``tower`` once on [1, tokens, in] bf16 in forward order, the MB of
    weights it reads); the last layer's attention output and feed-forward see the [CLS] row only, as the forward."""
    linears = [m for m in tower.modules() if isinstance(m, PackedLinear)]
    last = len(tower.layers) - 1
    cls_only = {id(m) for m in (tower.layers[last].attn_out, tower.layers[last].ffn_in, tower.layers[last].ffn_out)}
    cls_only |= {id(m) for m in tower.cls_projection_head.modules() if isinstance(m, PackedLinear)}
    inputs = [torch.randn(1, 1 if id(m) in cls_only else tokens, m.in_features).to(torch.bfloat16) for m in linears]
    mb = sum(m.in_features * m.out_features * 2 for m in linears) / 1e6

    def call() -> None:
        with torch.inference_mode():
            for m, x in zip(linears, inputs, strict=True):
                m(x)

    return call, round(mb, 1)


def interleaved_p50(calls: dict[str, Call], rounds: int) -> dict[str, float]:
    """Median ms of each call over ``rounds`` interleaved rounds, after two warm-up calls each."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for call in calls.values():
        call(), call()
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1000, 3) for k, v in times.items()}


def run_query_profile(model: Any, query: str, tower: FastTextTower, rounds: int = 15) -> dict[str, Any]:
    """The breakdown above for ``query`` through ``tower`` (built from ``model``'s text tower), 1 and 2 threads."""
    ids, mask = model.tokenizer([query])

    def encode() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return tower.project(ids, mask)

    chain, weight_mb = matmul_chain(tower, int(ids.shape[1]))
    raw = model.tokenizer.tokenizer
    before = model.precision
    calls: dict[str, Call] = {"encode": encode, "matmul_floor": chain, "tokenize": lambda: model.tokenizer([query]),
                              "tokenize_raw": lambda: raw([query], return_tensors="pt"),
                              "query_path": lambda: model.embed_texts([query])}
    out: dict[str, Any] = {"tokens": int(ids.shape[1]), "weight_mb": weight_mb, "threads": {}}
    threads_before = torch.get_num_threads()
    try:
        model.precision = "bf16"
        for threads in (1, 2):
            torch.set_num_threads(threads)
            wall = interleaved_p50(calls, rounds)
            profiled, kernels = kernel_ms(encode, rounds)
            out["threads"][str(threads)] = {
                "wall_ms": wall["encode"], "profiled_wall_ms": profiled, "ops_ms": kernels,
                "dispatch_ms": round(profiled - sum(kernels.values()), 3),
                "matmul_share_of_profiled": round(kernels.get("matmul", 0.0) / profiled, 3),
                "matmul_floor_ms": wall["matmul_floor"],
                "tokenize_ms": wall["tokenize"], "tokenize_raw_ms": wall["tokenize_raw"],
                "query_path_ms": wall["query_path"]}
    finally:
        torch.set_num_threads(threads_before)
        model.precision = before
    return out

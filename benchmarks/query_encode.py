"""Text-encode latency of one 16-token query per variant and thread count, interleaved round by round.

Eager variants (same weights; :func:`towers`, also scored for search agreement by the ``precision`` section):
``fp32``; ``bf16-autocast`` (autocast over fp32 weights: every Linear weight re-cast per call, the old bf16 path);
``bf16`` (matmul weights cast once, :func:`retrieval.models.fastpath.bf16_matmul_weights`: bit-identical to
bf16-autocast); ``bf16-packed`` (Linear weights also packed once for oneDNN,
:func:`retrieval.models.fastpath.pack_bf16_linears`); ``bf16-fast`` (packed weights in the lean forward of
:mod:`retrieval.models.text_fast` with ``fusion="none"``: fused qkv, no mask for an unpadded query, last layer on
[CLS] only: the query path until issue 12's profile); ``bf16-fused-gelu`` (the same forward with the GELU in its
matmul's epilogue: what ``VLModel.embed_texts`` runs at bf16 on a native-bf16 CPU); ``bf16-fused`` (also the
residual sums as oneDNN post-ops, bf16 hidden state);
``bf16-full`` (the whole tower in bf16, no autocast); ``int8`` (dynamic int8 Linears); ``int8-ffn+bf16`` (int8
feed-forward Linears only, bf16 attention); ``int8w`` (int8 weights per output channel, bf16 activations, eager
reference kernel: :mod:`benchmarks.query_int8w`). A variant is usable only at recall@10 >= 0.99 vs fp32 in the
``precision`` section (``search_query_variants_vs_fp32``).

Graph variants (:func:`graph_variants`, timing only: specialised to this query's shape, so not scored for search):
``jit-fp32`` (torch.jit.trace + freeze + optimize_for_inference), ``jit-bf16`` (trace + freeze under autocast over
cast-once weights), ``compiled-bf16`` (torch.compile, inductor with weight freezing/prepacking, needs a C++
compiler), ``compiled-fast`` (torch.compile of the lean forward over plain bf16 Linears, so that inductor's
freezing packs them itself and fuses their bias/GELU/add epilogues; ``dynamic=False``: one compile per token-count
bucket, the query's here), ``compiled-int8w`` (:mod:`benchmarks.query_int8w`: int8 weights per output channel, bf16
activations, max-autotune: AMX micro-GEMMs that dequantise weight tiles). Their one-off preparation seconds
(paid once per process and per query shape) are in ``prepare_s``; ``cosine_to_fp32`` is each variant's query
embedding against fp32's.

Rows that are not a tower: ``tokenize`` (``TextTokenizer.__call__`` on the query: part of a user's encode),
``query-path`` (``VLModel.embed_texts([query])`` at bf16: tokenize + the shipped tower + normalise, what a user
waits for) and ``matmul-floor`` (the shipped tower's packed Linears alone, back to back: the floor of any bf16
forward). ``profile`` (:mod:`benchmarks.query_profile`) splits the shipped tower's time per op kind.

Each at 1 and 2 torch threads: p50 and p95 of ``rounds`` rounds; ratios are p50 over fp32's at the same thread count,
measured in the same rounds, so a busy neighbour slows all variants alike.

    .venv/bin/python -m benchmarks.run --only query_encode
"""

from __future__ import annotations

import copy
import shutil
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from cxr_explorer.retrieval.models.fastpath import M, bf16_matmul_weights, can_pack, int8_dynamic, pack_bf16_linears
from cxr_explorer.retrieval.models.precision import native_bf16, query_precision
from cxr_explorer.retrieval.models.text_fast import FastTextTower, fused_qkv
from torch import nn

from benchmarks.encoders import query_of_tokens

Call = Callable[[], torch.Tensor]


def int8_ffn_bf16(tower: M) -> M:
    """A copy with each BERT layer's feed-forward Linears (intermediate.dense, output.dense: 2/3 of the weights)
    dynamically quantised to int8 and the other Linears in bf16 (run under bf16 autocast)."""
    ffn = {n for n, m in tower.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-2:] in
           (["intermediate", "dense"], ["output", "dense"]) and ".attention." not in n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notice
        out = torch.ao.quantization.quantize_dynamic(copy.deepcopy(tower), ffn, dtype=torch.qint8)
    return bf16_matmul_weights(out, in_place=True)


def towers(model: Any) -> dict[str, tuple[Any, bool]]:
    """name -> (text tower, run under bf16 autocast); the same weights in every variant."""
    fp32 = model.text_model
    out = {"fp32": (fp32, False), "bf16-autocast": (fp32, True), "bf16": (bf16_matmul_weights(fp32), True)}
    if can_pack(model.device):
        out["bf16-packed"] = (pack_bf16_linears(fp32), True)
        out["bf16-fast"] = (FastTextTower(fp32, fusion="none"), True)
        out["bf16-fused-gelu"] = (FastTextTower(fp32, fusion="gelu"), True)
        out["bf16-fused"] = (FastTextTower(fp32, fusion="all"), True)
    if hasattr(torch.ops.aten, "_weight_int8pack_mm"):
        from benchmarks.query_int8w import int8_weight_tower

        out["int8w"] = (int8_weight_tower(fp32), True)
    out.update({"bf16-full": (copy.deepcopy(fp32).to(torch.bfloat16), False), "int8": (int8_dynamic(fp32), False),
                "int8-ffn+bf16": (int8_ffn_bf16(fp32), True)})
    return out


def encoder(tower: Any, autocast: bool, ids: torch.Tensor, mask: torch.Tensor) -> Call:
    """A call encoding ``ids``/``mask`` [B, T] once: unnormalised [B, D] float32."""
    def call() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return tower.project(ids, mask).float()
    return call


def graph_encoder(fn: Callable[..., torch.Tensor], autocast: bool, ids: torch.Tensor, mask: torch.Tensor) -> Call:
    """As :func:`encoder` for a traced or compiled ``fn(ids, mask)`` -> [B, D]."""
    def call() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return fn(ids, mask).float()
    return call


class _Project(nn.Module):
    """``tower.project`` as a module's forward, for tracing and compiling: ids, mask [B, T] -> [B, D]."""

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.tower.project(ids, mask)  # type: ignore[operator]


def _jit(tower: nn.Module, autocast: bool, ids: torch.Tensor, mask: torch.Tensor) -> Any:
    with warnings.catch_warnings(), torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python in transformers
        traced = torch.jit.freeze(torch.jit.trace(_Project(tower).eval(), (ids, mask), check_trace=False))
        return torch.jit.optimize_for_inference(traced) if not autocast else traced


def _compiled(tower: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> Any:
    import torch._inductor.config as inductor

    if not (shutil.which("g++") or shutil.which("c++")):
        raise RuntimeError("no C++ compiler on PATH (inductor's CPU backend needs one)")
    with inductor.patch(freezing=True):
        fn = torch.compile(_Project(tower).eval(), dynamic=False)
        graph_encoder(fn, True, ids, mask)()  # compiles (weights frozen and prepacked) on the first call
    return fn


def unpacked_fast(fp32: Any) -> FastTextTower:
    """The lean forward (``fusion="none"``) over plain bf16 ``nn.Linear`` copies instead of packed ones, for
    torch.compile (inductor's freezing packs plain Linears itself and cannot trace pre-packed weights)."""
    fast = FastTextTower(fp32, fusion="none")
    for layer, plain in zip(fast.layers, fp32.bert.encoder.layer, strict=True):
        layer.qkv = fused_qkv(plain.attention.self).to(torch.bfloat16)
        layer.attn_out = copy.deepcopy(plain.attention.output.dense).to(torch.bfloat16)
        layer.ffn_in = copy.deepcopy(plain.intermediate.dense).to(torch.bfloat16)
        layer.ffn_out = copy.deepcopy(plain.output.dense).to(torch.bfloat16)
    fast.cls_projection_head = bf16_matmul_weights(fp32.cls_projection_head)
    return fast


def graph_variants(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> tuple[dict[str, Call], dict[str, Any]]:
    """(name -> call, name -> preparation seconds or the reason it failed) for the jit and compiled variants."""
    from benchmarks.query_int8w import compiled_int8w

    fp32 = model.text_model
    plans: dict[str, tuple[Callable[[], Any], bool]] = {
        "jit-fp32": (lambda: _jit(fp32, False, ids, mask), False),
        "jit-bf16": (lambda: _jit(bf16_matmul_weights(fp32), True, ids, mask), True),
        "compiled-bf16": (lambda: _compiled(bf16_matmul_weights(fp32), ids, mask), True),
        "compiled-fast": (lambda: _compiled(unpacked_fast(fp32), ids, mask), True),
        "compiled-int8w": (lambda: compiled_int8w(fp32, ids, mask), True)}
    calls: dict[str, Call] = {}
    prepare: dict[str, Any] = {}
    for name, (build, autocast) in plans.items():
        start = time.perf_counter()
        try:
            calls[name] = graph_encoder(build(), autocast, ids, mask)
            calls[name]()
            prepare[name] = round(time.perf_counter() - start, 1)
        except Exception as exc:  # a variant this torch or machine cannot build is reported, not fatal
            prepare[name] = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
    return calls, prepare


def _time(calls: dict[str, Call], rounds: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {k: [] for k in calls}
    for call in calls.values():
        call(), call()  # warm-up
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {k: {"p50_ms": round(p50[k], 2), "p95_ms": round(float(np.percentile(v, 95)) * 1000, 2),
                "ratio_to_fp32": round(p50[k] / p50["fp32"], 3)} for k, v in times.items()}


def shipped_variant(device: torch.device) -> str:
    """The row of :func:`towers` that ``VLModel.embed_texts`` runs at bf16 on ``device`` (``VLModel._bf16_text``)."""
    return "bf16-fused-gelu" if can_pack(device) else "bf16"


def _shipped(model: Any) -> FastTextTower | None:
    """The bf16 text tower ``VLModel`` runs on this CPU (None where it keeps the plain tower)."""
    return FastTextTower(model.text_model) if can_pack(model.device) else None


def _path_rows(model: Any, query: str, shipped: FastTextTower, tokens: int) -> dict[str, Call]:
    """The rows that are not a tower: tokenize, a user's whole bf16 encode, and the shipped tower's matmul floor."""
    from benchmarks.query_profile import matmul_chain

    def query_path() -> torch.Tensor:
        before, model.precision = model.precision, "bf16"
        try:
            return model.embed_texts([query])
        finally:
            model.precision = before

    chain, _ = matmul_chain(shipped, tokens)
    return {"tokenize": lambda: model.tokenizer([query])[0], "query-path": query_path,
            "matmul-floor": lambda: chain() or torch.empty(0)}


def run_query_encode(model: Any, rounds: int = 15, tokens: int = 16, graphs: bool = True) -> dict[str, Any]:
    """p50/p95 ms per (threads, variant), ratio to fp32 at the same threads, and the variant the query path uses."""
    query = query_of_tokens(model.tokenizer, tokens)
    ids, mask = model.tokenizer([query])
    calls = {name: encoder(tower, autocast, ids, mask) for name, (tower, autocast) in towers(model).items()}
    prepare: dict[str, Any] = {}
    if graphs and model.device.type == "cpu":
        graph_calls, prepare = graph_variants(model, ids, mask)
        calls.update(graph_calls)
    ref = torch.nn.functional.normalize(calls["fp32"](), dim=1)
    cosine = {k: round(float((torch.nn.functional.normalize(c(), dim=1) * ref).sum()), 6) for k, c in calls.items()}
    shipped = _shipped(model)
    if shipped is not None:
        calls.update(_path_rows(model, query, shipped, int(ids.shape[1])))
    before = torch.get_num_threads()
    table: dict[str, dict[str, Any]] = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            table[str(threads)] = _time(calls, rounds)
    finally:
        torch.set_num_threads(before)
    cpu = torch.device("cpu")
    bf16_path = shipped_variant(cpu)
    profile: dict[str, Any] = {"status": "skipped: this CPU keeps the plain bf16 tower"}
    if shipped is not None:
        from benchmarks.query_profile import run_query_profile

        profile = run_query_profile(model, query, shipped, rounds)
    return {"query_tokens": tokens, "rounds": rounds, "threads": table, "prepare_s": prepare, "profile": profile,
            "cosine_to_fp32": cosine, "native_bf16": native_bf16(cpu),
            "query_path": {"bf16_bundle": query_precision("bf16", cpu), "fp32_bundle": query_precision("fp32", cpu),
                           "bf16_variant": bf16_path},
            "goal_p50_ms": 15.0, "note": "one query per call, batch 1, no padding"}

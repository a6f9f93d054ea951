"""Process-wide CPU settings for one query's text encode: oneDNN's ISA cap, OpenMP's wait policy, fp32 matmuls in
bf16 (oneDNN fpmath mode). These are read once per process, so each variant runs in its own child process; the
children run one after another, alternating over ``repeats`` passes so that a neighbour's load falls on all alike.

Each child builds the seeded real-size model, times the shipped bf16 tower (``bf16-fused-gelu``) and the plain
fp32 tower on a 16-token query at 1 and 2 threads (p50 over ``rounds``) and prints one JSON line; the parent reports the
median over passes per variant and its ratio to ``default`` at the same thread count. ``first_query_2_threads``:
each fresh process's first bf16 query (oneDNN generates its kernels on first use), without and with
``FastTextTower.warm_up`` at load (what ``VLModel`` runs when it builds the bf16 tower), and the warm-up's seconds.

    .venv/bin/python -m benchmarks.query_env [--repeats 2] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EnvVariant:
    """A named set of environment variables (and whether fp32 matmuls run in bf16) for one child process."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    fp32_as_bf16: bool = False
    warm_up: bool = False  # FastTextTower.warm_up() before the first query, as VLModel does at load


VARIANTS: tuple[EnvVariant, ...] = (
    EnvVariant("default"),
    EnvVariant("default, warmed up at load", warm_up=True),
    EnvVariant("isa-avx512-bf16 (AMX off)", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}),
    EnvVariant("omp-passive", {"OMP_WAIT_POLICY": "PASSIVE"}),
    EnvVariant("omp-active", {"OMP_WAIT_POLICY": "ACTIVE"}),
    EnvVariant("fp32-matmul-in-bf16 (fpmath)", fp32_as_bf16=True),
)


def _child(rounds: int, fp32_as_bf16: bool, warm_up: bool) -> dict[str, Any]:
    """p50 ms per (threads, tower) in this process: the shipped bf16 tower and ``fp32`` on a 16-token query; and the
    first bf16 query's ms in this fresh process (after ``FastTextTower.warm_up`` when ``warm_up``, its seconds too)."""
    import torch
    from cxr_explorer.retrieval.models.api import text_path_name
    from cxr_explorer.retrieval.models.text_fast import FastTextTower

    from benchmarks.common import seeded_model
    from benchmarks.encoders import query_of_tokens
    from benchmarks.query_profile import interleaved_p50

    if fp32_as_bf16:
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"  # type: ignore[attr-defined]
    model = seeded_model("biovil")
    ids, mask = model.tokenizer([query_of_tokens(model.tokenizer, 16)])
    fast = FastTextTower(model.text_model)
    torch.set_num_threads(2)
    out: dict[str, Any] = {"warm_up_s": round(fast.warm_up(), 3) if warm_up else None}

    def bf16() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            fast.project(ids, mask)

    t0 = time.perf_counter()
    bf16()
    out["first_query_ms"] = round((time.perf_counter() - t0) * 1000, 2)

    def fp32() -> None:
        with torch.inference_mode():
            model.text_model.project(ids, mask)

    calls = {text_path_name(fast, "bf16"): bf16, "fp32": fp32}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out[str(threads)] = {k: round(v, 2) for k, v in interleaved_p50(calls, rounds).items()}
    return out


def run_query_env(repeats: int = 2, rounds: int = 15) -> dict[str, Any]:
    """Median over ``repeats`` alternating passes of each variant's child p50s, and the ratio to ``default``."""
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in VARIANTS}
    failed: dict[str, str] = {}
    for _ in range(repeats):
        for v in VARIANTS:
            cmd = [sys.executable, "-m", "benchmarks.query_env", "--child", "--rounds", str(rounds)]
            cmd += ["--fp32-as-bf16"] if v.fp32_as_bf16 else []
            cmd += ["--warm-up"] if v.warm_up else []
            proc = subprocess.run(cmd, env={**os.environ, **v.env}, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                failed[v.name] = proc.stderr.strip().splitlines()[-1][:200] if proc.stderr.strip() else "no output"
                continue
            runs[v.name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    table: dict[str, Any] = {"first_query_2_threads": {
        name: {k: statistics.median(r[k] for r in rs) if rs[0][k] is not None else None
               for k in ("first_query_ms", "warm_up_s")} for name, rs in runs.items() if rs}}
    for threads in ("1", "2"):
        med = {name: {tower: round(statistics.median(r[threads][tower] for r in rs), 2)
                      for tower in rs[0][threads]} for name, rs in runs.items() if rs}
        base = med.get("default", {})
        table[threads] = {name: {**row, **{f"{t}_ratio_to_default": round(row[t] / base[t], 3)
                                          for t in row if t in base}} for name, row in med.items()}
    return {"threads": table, "repeats": repeats, "rounds": rounds, "failed": failed,
            "env": {v.name: v.env or ("torch.backends.mkldnn.matmul.fp32_precision=bf16" if v.fp32_as_bf16 else {})
                    for v in VARIANTS},
            "note": "each variant in its own process, passes alternated"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.query_env", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fp32-as-bf16", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--warm-up", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.rounds, args.fp32_as_bf16, args.warm_up)))
    else:
        print(json.dumps(run_query_env(args.repeats, args.rounds), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

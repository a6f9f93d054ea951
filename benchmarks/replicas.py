"""Replicas on one host: the query encode beside a busy neighbour, and concurrent sessions through Caddy with one
process against two, in one run.

``encode``: ``VLModel.embed_texts`` of one 12-word query (the real-size seeded BioViL at bf16, what a user waits for
on a text search), p50/p95 over ``rounds`` calls in a fresh process, idle and with a busy neighbour: a second
process running torch work back to back (a second replica's searches, or a build). Three thread policies: ``default``
(each process takes every core, OpenMP's default wait), ``serve`` (what ``cxr-explorer serve --replicas 2`` gives
each process: cores/2 threads and ``OMP_WAIT_POLICY=PASSIVE``, the neighbour too), ``serve-vs-default`` (the app under
serve's policy, the neighbour a process started by hand with the defaults, e.g. a build). Ratios are busy p50 over
idle p50 of the same policy.

``sessions``: ``cxr-explorer serve --replicas R --tls off`` (the same Caddy in front of both, so only the number
of processes differs) on a synthetic bundle, then 8, 16 and 32 protocol clients at once (``benchmarks/browser.py``:
Streamlit's websocket protocol, each a search per query back to back, nothing rendered): p50/p95 per search and
errors, for R = 1 and 2.

    .venv/bin/python -m benchmarks.replicas [--rounds 40] [--sessions 8,16,32] [--repeats 3]
writes ``benchmarks/results/replicas.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import machine

RESULTS = Path(__file__).resolve().parent / "results" / "replicas.json"
QUERY = "small left pleural effusion with basilar atelectasis and mild cardiomegaly no acute pneumothorax"  # 12 words

_ENCODER = """
import json, statistics, sys, time
import torch
from benchmarks.common import seeded_model
model = seeded_model("biovil", precision="bf16")
rounds = int(sys.argv[1])
model.embed_texts([sys.argv[2]])
times = []
for _ in range(rounds):
    t = time.perf_counter()
    model.embed_texts([sys.argv[2]])
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(json.dumps({"p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))],
                  "threads": torch.get_num_threads()}))
"""

_NEIGHBOUR = """
import sys, torch
a = torch.randn(768, 768)
open(sys.argv[1], "w").close()
while True:
    for _ in range(8):
        a = torch.tanh(a @ a.T / 768)
"""


def _policy_env(policy: str, replicas: int = 2) -> dict[str, str]:
    from cxr_explorer.commands.serve import thread_env

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "OPENBLAS_", "NUMBA_NUM"))}
    cores = len(os.sched_getaffinity(0))
    return env | (thread_env(replicas, cores) if policy == "serve" else {})


def _encode(env: dict[str, str], rounds: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _ENCODER, str(rounds), QUERY], env=env, capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _with_neighbour(env_app: dict[str, str], env_neighbour: dict[str, str], rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready"
        proc = subprocess.Popen([sys.executable, "-c", _NEIGHBOUR, str(ready)], env=env_neighbour,
                                start_new_session=True)
        try:
            while not ready.exists():
                assert proc.poll() is None, "the neighbour exited"
                time.sleep(0.1)
            return _encode(env_app, rounds)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_encode(rounds: int) -> dict[str, Any]:
    """Idle and busy-neighbour query-encode p50/p95 (ms) per policy (module docstring)."""
    out: dict[str, Any] = {}
    for name, app_policy, neighbour_policy in (("default", "default", "default"), ("serve", "serve", "serve"),
                                               ("serve-vs-default", "serve", "default")):
        idle = _encode(_policy_env(app_policy), rounds)
        busy = _with_neighbour(_policy_env(app_policy), _policy_env(neighbour_policy), rounds)
        out[name] = {"idle": idle, "busy": busy, "busy_over_idle_p50": round(busy["p50"] / idle["p50"], 2)}
        print(f"encode {name}: idle p50 {idle['p50']:.1f} ms, busy p50 {busy['p50']:.1f} ms "
              f"({out[name]['busy_over_idle_p50']}x)", file=sys.stderr, flush=True)
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(bundle: Path, replicas: int, state: Path) -> tuple[subprocess.Popen, str, list[int]]:
    port = _free_port()
    exe = shutil.which("cxr-explorer") or str(Path(sys.executable).parent / "cxr-explorer")
    proc = subprocess.Popen([exe, "serve", "--replicas", str(replicas), "--listen", f"127.0.0.1:{port}", "--tls",
                             "off", "--state-dir", str(state), "--", str(bundle)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    ports: list[int] = []
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited with code {proc.returncode}"
        try:
            ports = [r["port"] for r in json.loads((state / "replicas.json").read_text())]
            for p in ports:
                urllib.request.urlopen(f"http://127.0.0.1:{p}/_stcore/health", timeout=2).close()
            urllib.request.urlopen(url + "/_stcore/health", timeout=2).close()
            return proc, url, ports
        except (OSError, ValueError):
            time.sleep(0.5)
    raise TimeoutError("serve did not become healthy")


def run_sessions(bundle: Path, counts: list[int], repeats: int) -> dict[str, Any]:
    """Per replica count and session count: p50/p95 (ms) per search and errors (module docstring)."""
    from benchmarks.browser import _protocol, concurrent

    out: dict[str, Any] = {}
    for replicas in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            proc, url, ports = _serve(bundle, replicas, Path(tmp))
            try:
                for port in ports:  # warm: each process's first page and first search, straight to it
                    asyncio.run(_protocol(f"http://127.0.0.1:{port}", 1, 2))
                for n in counts:
                    row = concurrent(asyncio.run(_protocol(url, n, repeats)))
                    out.setdefault(f"{replicas}_replica", {})[str(n)] = row
                    print(f"sessions {replicas} replica(s), {n} sessions: p50 {row.get('p50_ms', 0):.0f} ms, "
                          f"p95 {row.get('p95_ms', 0):.0f} ms, errors {row['errors']}", file=sys.stderr, flush=True)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks.app import synthetic_bundle

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--sessions", default="8,16,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--only", choices=("encode", "sessions"), default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"machine": machine(), "command": "python -m benchmarks.replicas " + " ".join(argv or
                                                                                                        sys.argv[1:])}
    if args.only in (None, "encode"):
        result["encode"] = run_encode(args.rounds)
    if args.only in (None, "sessions"):
        with tempfile.TemporaryDirectory() as tmp:
            bundle = synthetic_bundle(Path(tmp), args.items)
            result["sessions"] = run_sessions(bundle, [int(n) for n in args.sessions.split(",")], args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

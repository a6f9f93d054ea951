"""GPU figures when a CUDA device is present: encoder throughput on GPU vs CPU, FAISS flat search on GPU vs CPU.

On a machine without CUDA this section records ``{"available": false, "note": "no GPU"}``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import gpu_name, ms_stats, seeded_model, time_calls
from benchmarks.query import clustered_vectors


def _gpu_encoder_rate(model: Any, batch: int, n_batches: int) -> float:
    import torch

    x = torch.rand((batch, 3, model.spec.crop, model.spec.crop))
    model.encode_images(x)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n_batches):
        model.encode_images(x)  # returns CPU tensors, so each batch is synchronised
    return batch * n_batches / (time.perf_counter() - t0)


def _faiss_gpu_vs_cpu(n: int, n_queries: int = 200) -> dict[str, Any]:
    import faiss

    if not (hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0):
        return {"available": False, "note": "this FAISS build has no GPU support (faiss-cpu)"}
    x = clustered_vectors(n, seed=7)
    q = clustered_vectors(n_queries, seed=8)
    cpu = faiss.IndexFlatIP(x.shape[1])
    cpu.add(x)
    res = faiss.StandardGpuResources()
    gpu = faiss.index_cpu_to_gpu(res, 0, cpu)
    t_cpu = time_calls(lambda i: cpu.search(q[i][None], 10), n_queries, warmup=3)
    t_gpu = time_calls(lambda i: gpu.search(q[i][None], 10), n_queries, warmup=3)
    c, g = ms_stats(t_cpu), ms_stats(t_gpu)
    return {"available": True, "vectors": n, "cpu_flat": c, "gpu_flat": g,
            "gpu_speedup_p50": round(c["p50_ms"] / g["p50_ms"], 2), "ivf": _ivf_gpu(x, q, res)}


def _ivf_gpu(x: np.ndarray, q: np.ndarray, res: Any) -> dict[str, Any]:
    """The bundle's own IVF index (retrieval.bundle.writer.build_index) on the GPU: single-query latency, recall@10."""
    import faiss

    from benchmarks.query import recall_at_10
    from cxr_explorer.retrieval.bundle.reader import apply_search_params
    from cxr_explorer.retrieval.bundle.writer import build_index

    cpu, info = build_index(x, "ivf", use_gpu=False)
    apply_search_params(cpu, info["params"])
    gpu = faiss.index_cpu_to_gpu(res, 0, cpu)
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    _, exact = flat.search(q, 10)
    return {"params": info["params"], "gpu_ivf": ms_stats(time_calls(lambda i: gpu.search(q[i][None], 10), len(q), 3)),
            "recall_at_10": round(recall_at_10(gpu, exact, q), 4)}


def gpu_build(model: Any, corpus: Path | None, limit: int, tmp: Path) -> dict[str, Any]:
    """Whole-job items/s on the GPU at bf16, batch 64, decode workers = cores - 1 (index.runner.run_build)."""
    from benchmarks.build import whole_job_rate
    from cxr_explorer.index.runner import cpu_count

    if corpus is None or not corpus.is_dir():
        return {"status": "skipped: covid_chestxray absent"}
    model.precision = "bf16"
    workers = max(1, cpu_count() - 1)
    rate, info = whole_job_rate(model, corpus, limit, 64, workers, tmp, "gpu-bf16")
    return {"precision": "bf16", "batch": 64, "decode_workers": workers, "job_items_per_s": round(rate, 2), **info}


def run_gpu(model_name: str, batch: int, n_batches: int, faiss_sizes: list[int], corpus: Path | None = None,
            build_limit: int = 256) -> dict[str, Any]:
    """GPU section; ``available: false`` without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "note": "no GPU"}
    model = seeded_model(model_name, device="cuda")
    out: dict[str, Any] = {"available": True, "gpu": gpu_name(), "batch": batch, "encoder_images_per_s": {}}
    for precision in ("fp32", "bf16"):
        model.precision = precision
        out["encoder_images_per_s"][precision] = round(_gpu_encoder_rate(model, batch, n_batches), 2)
    out["faiss"] = {str(n): _faiss_gpu_vs_cpu(n) for n in faiss_sizes}
    with tempfile.TemporaryDirectory() as tmp:
        out["build"] = gpu_build(model, corpus, build_limit, Path(tmp))
    del model
    torch.cuda.empty_cache()
    return out


def cpu_gpu_ratio(cpu_rate: float | None, gpu: dict[str, Any]) -> float | None:
    """GPU fp32 encoder images/s over the CPU's, when both exist."""
    if not gpu.get("available") or not cpu_rate:
        return None
    return round(float(np.float64(gpu["encoder_images_per_s"]["fp32"]) / cpu_rate), 2)

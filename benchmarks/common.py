"""Shared helpers: the machine record, timers with p50/p95, peak RSS, and the benchmark-only seeded models.

Every figure is a median (or percentile) of repeated timings taken in the same process; ratios are always formed
from two figures measured in the same run on the same machine.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

SEEDED_NOTE = ("benchmark-seeded: the real-size architecture with seeded random weights (real weights are not "
               "downloadable here); speed is that of the real model, similarities are meaningless")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def gpu_name() -> str | None:
    """Name of CUDA device 0, or None when there is no GPU."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine() -> dict[str, Any]:
    """Where the figures came from: CPU model, cores, torch threads, load, memory, GPU."""
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = float("nan")
    import faiss

    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(mem_gib, 1),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "gpu": gpu_name() or "no GPU",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "faiss": getattr(faiss, "__version__", "?"),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    """Current resident set size, MiB (from /proc/self/statm; peak RSS where that is unavailable)."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return peak_rss_mib()


def time_calls(fn: Callable[[int], Any], n: int, warmup: int = 1) -> np.ndarray:
    """Seconds of ``n`` calls ``fn(i)`` after ``warmup`` untimed calls: ``[n]`` float64."""
    for i in range(warmup):
        fn(i)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out[i] = time.perf_counter() - t0
    return out


def ms_stats(seconds: np.ndarray | list[float]) -> dict[str, float]:
    """p50 / p95 / mean in milliseconds and the count of a ``[n]`` array of seconds."""
    s = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"p50_ms": round(float(np.percentile(s, 50)), 3), "p95_ms": round(float(np.percentile(s, 95)), 3),
            "mean_ms": round(float(s.mean()), 3), "n": int(s.size)}


REPORT_CSVS = ("iu_xray_reports/reports.csv", "covid_chestxray/reports.csv")


def realistic_vocab(size: int = 30522) -> OrderedDict[str, int]:
    """A WordPiece vocab of CXR-BERT's size whose words are the most frequent ones of the shared report corpora.

    Real CXR-BERT weights and vocab cannot be downloaded here. Timing BERT with the tiny test vocab would split words
    into characters and triple sequence lengths; this vocab keeps radiology words whole, so token counts come close
    to CXR-BERT's (its card: about 58 tokens per report). Falls back to padding the tiny vocab when ../shared is absent.
    """
    import re
    from collections import Counter

    import pandas as pd

    from cxr_explorer.retrieval.models.loading import tiny_vocab

    base = list(tiny_vocab())
    counts: Counter[str] = Counter()
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    for rel in REPORT_CSVS:
        if (data / rel).is_file():
            df = pd.read_csv(data / rel, dtype=str, keep_default_na=False)
            text = " ".join(" ".join(df[c]) for c in ("findings", "impression") if c in df.columns)
            counts.update(re.findall(r"[a-z0-9]+", text.lower()))
    words = [w for w, _ in counts.most_common() if w not in set(base)]
    tokens = (base + words)[:size]
    tokens += [f"[unused{i}]" for i in range(size - len(tokens))]
    return OrderedDict((t, i) for i, t in enumerate(tokens))


def seeded_model(name: str = "biovil", precision: str = "fp32", device: str = "cpu") -> Any:
    """A benchmark-only ``VLModel``: the real-size ``name`` architecture with seeded weights (never user-facing).

    ``tiny-random`` returns the registry's synthetic model (used by ``--smoke``). The text tower is BERT-base with a
    30,522-token vocab of real radiology words (:func:`realistic_vocab`), so sequence lengths, the embedding table
    and every layer have the real sizes and costs.
    """
    from cxr_explorer.retrieval.models.api import ModelIdentity, VLModel, build_model
    from cxr_explorer.retrieval.models.loading import build_seeded
    from cxr_explorer.retrieval.models.registry import get_spec

    spec = get_spec(name)
    if not spec.is_real:
        return build_model(spec, None, device, precision)  # type: ignore[arg-type]
    image, text, tok = build_seeded(spec, realistic_vocab(), f"bench-{name}")
    identity = ModelIdentity(name, "benchmark-seeded", None, False, "benchmark-seeded", False, (SEEDED_NOTE,))
    return VLModel(spec, image.eval(), text.eval(), tok, identity, torch.device(device), precision)  # type: ignore[arg-type]


QUERY_PHRASES: tuple[str, ...] = (
    "left lower lobe consolidation", "right pleural effusion", "cardiomegaly", "no evidence of pneumothorax",
    "bilateral patchy opacities", "mild pulmonary edema", "left basilar atelectasis", "right upper lobe pneumonia",
    "small bilateral pleural effusions", "enlarged heart size", "diffuse interstitial pattern", "focal opacity",
    "no acute cardiopulmonary process", "ground glass opacities in both lungs", "chest tube in right apex",
    "left apical pneumothorax", "moderate cardiomegaly with edema", "normal heart size", "lung nodule right upper",
    "pleural effusion left base", "consolidation consistent with pneumonia", "severe bilateral infiltrates",
    "stable chronic changes", "large left effusion", "central line tip in the right atrium", "clear lungs",
    "peripheral opacities suggesting covid", "mild atelectasis at the bases", "right middle lobe opacity",
    "unchanged mild cardiomegaly", "lower lobe infiltrate", "apical nodule", "no pleural effusion",
    "interstitial edema", "lateral view shows effusion", "upper lobe mass", "there is no pneumonia",
    "findings suggesting pneumonia", "acute chronic pattern", "diffuse bilateral opacity",
)
"""Distinct radiology-style phrases, so timed text encodes never hit a cache."""

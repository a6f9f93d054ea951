"""Is the job as fast as the model? (job images/s) / (model-only forward images/s), on any corpus folder or CSV.

A quick standalone check beside the ``build`` section of ``benchmarks/run.py`` (which measures the same ratio on
covid_chestxray with per-stage figures). Real weights cannot be downloaded here, so the real-size architecture is
timed with the benchmarks' seeded weights (:func:`benchmarks.common.seeded_model`, identity ``benchmark-seeded``,
never reachable through ``--model``). Usage::

    python -m benchmarks.job_vs_model FOLDER_OR_CSV --arch biovil --limit 64 [--workers 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from cxr_explorer.index.runner import BuildConfig, cpu_count, run_build
from cxr_explorer.retrieval.bundle.store import read_manifest
from cxr_explorer.retrieval.models import VLModel
from cxr_explorer.retrieval.models.api import pick_device

from benchmarks.common import seeded_model


def forward_rate(model: VLModel, batch: int, repeats: int = 3) -> float:
    """Images/s of ``encode_images`` alone on random input (one warm-up batch not counted)."""
    crop = model.preprocessing.crop
    x = torch.rand(batch, 3, crop, crop)
    model.encode_images(x)
    start = time.perf_counter()
    for _ in range(repeats):
        model.encode_images(x)
    return batch * repeats / (time.perf_counter() - start)


def run(corpus: Path, arch: str, limit: int, workers: int | None, threads: int | None, batch: int,
        device: str = "auto", precision: str = "fp32") -> dict[str, Any]:
    """Time a build of ``limit`` items against the model-only rate with the same threads and batch size."""
    model = seeded_model(arch, precision, str(pick_device(device)))  # tiny-random: the registry's test model
    torch.set_num_threads(threads or cpu_count())
    before = forward_rate(model, batch)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BuildConfig(corpus=corpus, out=Path(tmp) / "bundle", model=model.spec.name, workers=workers,
                          threads=threads, batch_size=batch, limit=limit, progress="none", device=device,
                          precision=precision)
        summary = run_build(cfg, model=model)
        manifest_build = (read_manifest(Path(tmp) / "bundle") or {})["build"]
    model_rate = (before + forward_rate(model, batch)) / 2  # before and after: this machine may be shared
    timings = manifest_build["timings"]
    image_s = timings.get("image_model_s", 0.0)
    steady_s = timings["wall_s"] - timings.get("decode_startup_s", 0.0)
    return {"arch": model.spec.name, "device": str(model.device), "threads": torch.get_num_threads(),
            "workers": manifest_build["last_run"]["workers"], "batch": batch, "items": summary.indexed_now,
            "model_only_images_per_s": round(model_rate, 2), "job_images_per_s": round(summary.images_per_s or 0, 2),
            "job_image_stage_images_per_s": round(summary.indexed_now / image_s, 2) if image_s else None,
            "ratio_job_to_model": round((summary.images_per_s or 0) / model_rate, 3),
            "ratio_steady_state": round(summary.indexed_now / steady_s / model_rate, 3) if steady_s else None,
            "model_share_of_steady_wall": round((image_s + timings.get("text_model_s", 0.0)) / steady_s, 3)
            if steady_s else None,
            "timings": timings}


def main() -> None:
    """Command-line entry: print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", type=Path)
    p.add_argument("--arch", default="biovil", choices=("biovil", "biovil-t", "tiny-random"))
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run(args.corpus, args.arch, args.limit, args.workers, args.threads, args.batch_size,
                         args.device, args.precision), indent=2))


if __name__ == "__main__":
    main()

"""``python -m benchmarks.run [--smoke|--quick|--full] [--out FILE]``: run the benchmarks, print a markdown table,
write JSON (and a ``.md`` next to it).

``--smoke`` (CI, < 60 s) uses the synthetic ``tiny-random`` model and small sizes; it checks the plumbing, its
figures mean nothing. ``--quick`` (default) and ``--full`` use the real-size BioViL architecture with seeded weights.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import SEEDED_NOTE, machine, peak_rss_mib, seeded_model

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "covid_chestxray"
SECTIONS = ("build", "query", "grounding", "app", "browser", "gpu", "priors", "curate")
"""The sections every mode runs by default (priors not in --smoke); the scale sections (minutes each, their JSON
printed as is) are added by --quick (DEFAULT_SCALE) and --full (all); ``--only`` picks any."""
SCALE_SECTIONS = ("sentences", "build_reports", "precision", "query_encode", "growth", "memory", "app_scale",
                  "compose")
DEFAULT_SCALE = ("sentences", "build_reports", "query_encode", "memory", "app_scale")


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions of one mode."""

    model: str
    build_images: int
    batch: int
    encoder_batches: int
    reports: int
    decode_workers: int
    sizes: tuple[int, ...]
    hnsw_max: int
    n_text: int
    n_search: int
    n_recall: int
    ground_ours: int
    ground_ref: int
    precisions: tuple[str, ...] = ("fp32", "bf16")
    rounds: int = 2
    app_items: int = 10_000
    app_queries: int = 8
    curate_sizes: tuple[int, ...] = (10_000, 100_000)
    curate_covid: int = 200


PLANS = {
    "smoke": Plan("tiny-random", 4, 2, 2, 8, 1, (2_000,), 10**9, 5, 50, 50, 10, 3, ("fp32",), 1, 300, 2, (2_000,), 0),
    "quick": Plan("biovil", 24, 1, 16, 48, 1, (10_000, 100_000), 10**9, 20, 200, 200, 40, 8, rounds=3),
    "full": Plan("biovil", 64, 1, 32, 128, 1, (10_000, 100_000, 1_000_000), 10**9, 40, 500, 500, 80, 16,
                 rounds=3, app_items=100_000, app_queries=12),
}


def image_paths(n: int, tmp: Path) -> list[Path]:
    """``n`` chest X-ray files: covid_chestxray images when present, else synthetic PNGs of a similar size."""
    folder = SHARED_DATA / "images"
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if len(files) >= n:
            return files[:n]
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = tmp / f"synthetic_{i}.png"
        Image.fromarray(rng.integers(0, 256, (560 + 8 * i, 512), dtype=np.uint8), mode="L").save(p)
        out.append(p)
    return out


def grounding_image(tmp: Path) -> Path:
    """The grounding image: the first covid_chestxray image with lung boxes, else a synthetic one."""
    boxes = SHARED_DATA / "boxes.csv"
    if boxes.is_file():
        import pandas as pd

        first = str(pd.read_csv(boxes)["image_id"].iloc[0])
        for ext in (".jpg", ".png", ".jpeg"):
            if (SHARED_DATA / "images" / f"{first}{ext}").is_file():
                return SHARED_DATA / "images" / f"{first}{ext}"
    return image_paths(1, tmp)[0]


def run(mode: str, sections: set[str]) -> dict[str, Any]:
    """Run the chosen sections of ``mode`` and return the results dict."""
    from benchmarks.app import run_app
    from benchmarks.build import run_build
    from benchmarks.gpu import cpu_gpu_ratio, run_gpu
    from benchmarks.grounding import run_grounding
    from benchmarks.query import run_query

    plan = PLANS[mode]
    t0 = time.perf_counter()
    res: dict[str, Any] = {"mode": mode, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "machine": machine(),
                           "model": {"name": plan.model, "note": "synthetic tiny test model: figures mean nothing"
                                     if plan.model == "tiny-random" else SEEDED_NOTE}}
    model = seeded_model(plan.model)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "build" in sections:  # first, so the peak RSS after it is the build's own
            res["build"] = run_build(model, image_paths(plan.build_images, tmp), SHARED_DATA / "reports.csv",
                                     plan.batch, plan.encoder_batches, plan.reports, plan.decode_workers,
                                     SHARED_DATA, tmp, plan.rounds, plan.precisions)
            res["build_ratio"] = res["build"]["build_ratio"]
            res["build_overhead"] = res["build"].get("build_overhead_bf16") or res["build"].get("build_overhead_fp32")
        if "grounding" in sections:
            g = run_grounding(model, grounding_image(tmp), plan.ground_ours, plan.ground_ref)
            res["grounding"] = g
            res["grounding_speedup"] = g["grounding_speedup"]
            res["grounding_ours_p50_ms"] = g["ours_p50_ms"]
            res["grounding_reference_p50_ms"] = g["reference_p50_ms"]
        if "query" in sections:
            kinds = {n: ["flat", "ivf"] + (["hnsw"] if n <= plan.hnsw_max else []) for n in plan.sizes}
            res["query"] = run_query(model, list(plan.sizes), kinds, plan.n_text, plan.n_search, plan.n_recall)
        res["app"] = run_app(tmp, plan.app_items, plan.app_queries) if "app" in sections else {"status": "skipped"}
        if "priors" in sections and mode != "smoke":  # BioViL-T build without/with the temporal stage
            from benchmarks.priors import run_priors

            res["priors"] = run_priors(seeded_model("biovil-t"), SHARED_DATA, plan.build_images, tmp)
        if "curate" in sections:
            from benchmarks.curate import run_curate

            res["curate"] = run_curate(model, list(plan.curate_sizes), plan.rounds, SHARED_DATA, plan.curate_covid, tmp)
        if "browser" in sections:
            from benchmarks.browser import bundles_for, run_browser

            res["browser"] = run_browser(bundles_for(tmp, plan.app_items), repeats=5 if mode != "smoke" else 2)
    run_scale_sections(res, model, plan, sections)
    if "gpu" in sections and mode != "smoke":
        res["gpu"] = run_gpu(plan.model, plan.batch, plan.encoder_batches, [100_000, 1_000_000], SHARED_DATA)
    else:
        import torch

        res["gpu"] = ({"available": False, "note": "no GPU"} if not torch.cuda.is_available()
                      else {"available": False, "note": "GPU present but skipped in --smoke"})
    cpu_fp32 = res.get("build", {}).get("precisions", {}).get("fp32", {}).get("encoder_images_per_s")
    res["gpu"]["encoder_gpu_over_cpu_fp32"] = cpu_gpu_ratio(cpu_fp32, res["gpu"])
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return res


def run_scale_sections(res: dict[str, Any], model: Any, plan: Any, sections: set[str]) -> None:
    """Run the scale sections named in ``sections`` into ``res`` (the smoke plan keeps them small)."""
    smoke = plan.model == "tiny-random"
    if "sentences" in sections:
        from benchmarks.sentences import run_sentences

        res["sentences"] = run_sentences(model.tokenizer, 300 if smoke else None)
    if "build_reports" in sections:
        _build_reports(res, model, plan, smoke)
    if "query_encode" in sections:
        from benchmarks.query_encode import run_query_encode

        res["query_encode"] = run_query_encode(model, rounds=3 if smoke else 15)
    if "precision" in sections:
        from benchmarks.precision import run_precision

        res["precision"] = run_precision(model, 4 if smoke else 64, 10 if smoke else 200)
    if "growth" in sections:
        from benchmarks.growth import run_growth

        res["growth"] = run_growth(model, smoke, full=plan.sizes[-1] >= 1_000_000)
    if "memory" in sections:
        from benchmarks.memory import run_memory

        res["memory"] = run_memory(smoke, full=plan.sizes[-1] >= 1_000_000)
    if "app_scale" in sections:
        from benchmarks.app import run_app_scale

        res["app_scale"] = run_app_scale(300 if smoke else 100_000)  # the app's RSS at 100k
    if "compose" in sections:
        from benchmarks.compose import run_compose

        res["compose"] = run_compose(smoke)


def _build_reports(res: dict[str, Any], model: Any, plan: Any, smoke: bool) -> None:
    """The build_reports section: the whole job on covid images + IU report texts (every covid image; 4 in smoke)."""
    from benchmarks.build import COVID_IMAGES, missing_data, run_build_reports

    missing = missing_data()
    if missing is not None:
        res["build_reports"] = {"status": f"skipped: {missing}"}
        return
    with tempfile.TemporaryDirectory() as tmp:
        res["build_reports"] = run_build_reports(model, image_paths(4 if smoke else COVID_IMAGES, Path(tmp)), Path(tmp),
                                                 plan.batch, plan.encoder_batches, plan.decode_workers,
                                                 rounds=1 if smoke else 2,
                                                 precisions=("fp32",) if smoke else ("bf16",))


def check_finite(x: Any, path: str = "") -> list[str]:
    """Names of the numeric figures in ``x`` that are NaN or infinite (should be none)."""
    if isinstance(x, dict):
        return [bad for k, v in x.items() for bad in check_finite(v, f"{path}.{k}")]
    if isinstance(x, list):
        return [bad for i, v in enumerate(x) for bad in check_finite(v, f"{path}[{i}]")]
    return [path] if isinstance(x, float) and not math.isfinite(x) else []


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, print the markdown table, write the JSON and the markdown."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke", help="CI plumbing check, < 60 s")
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick", help="(default) a few minutes")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="adds 1M vectors, more reps")
    p.add_argument("--out", default=None, help="JSON output (default benchmarks/results/<mode>-<time>.json)")
    p.add_argument("--only", nargs="+", choices=(*SECTIONS, *SCALE_SECTIONS), default=None,
                   help="run only these sections")
    p.add_argument("--gpu", action="store_true", help="GPU run (benchmarks/gpu.sh): the gpu and query_encode sections")
    args = p.parse_args(argv)
    if args.gpu:
        args.only = sorted(set(args.only or ()) | {"gpu", "query_encode"})
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    mode_name = args.mode or "quick"
    scale = () if mode_name == "smoke" else SCALE_SECTIONS if mode_name == "full" else DEFAULT_SCALE
    sections = set(args.only or (*SECTIONS, *scale))  # smoke: the scale sections have their own smoke test
    res = run(mode_name, sections)
    from benchmarks.report import to_markdown

    md = to_markdown(res)
    print(md)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / (
        f"{mode_name}-{dt.datetime.now():%Y%m%d-%H%M%S}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(md, encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    bad = check_finite(res)
    if bad:
        print(f"non-finite figures: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

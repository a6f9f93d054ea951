"""Peak RSS of a whole build vs corpus size: memory must be bounded by the chunk, not the corpus.

Each size runs in a fresh process (``python -m benchmarks.memory --child N FOLDER``) so its peak RSS is its own:
``index.runner.run_build`` with the ``tiny-random`` model (BioViL's classes at tiny widths, 128-d vectors) on N
synthetic grayscale PNGs with one-line reports (every report distinct: the text cache's worst case), chunks of 1,024
items, including finalisation. The quick run uses :data:`QUICK_CROP` (32 px: a 1 x 1 patch grid, so 100k items
build in minutes on 2 cores; every per-item byte but the patches is real-size); ``--full`` adds 1k and 10k at the real
480 px crop (15 x 15 x 128 patches: the real bytes of the chunk being filled).

A sampler thread reads the process's RSS every 50 ms; the peak is kept per phase (:mod:`benchmarks.memory_phases`):
embedding of the first chunk, embedding of the later chunks (flat means these two are equal), then finalise's
gather, tables and vectors, patch file, thumbnails, FAISS indexes, map projections (PCA/UMAP) and the reopen.
After each committed chunk the RSS is recorded too (``rss_after_chunk_mib``); ``phase_peak_growth_mib_per_100k_*``
is each phase's peak growth between the 10k and the 100k build, per 100k items (0 = flat).

Found (2026-12-01, 32 px, loaded 2-core machine): before the fixes of issue 12 the 100k build peaked at 2,464 MiB in
the map step (UMAP fitted on all vectors, 174 s), with the gathered chunk vectors, their concatenated copies and a
full metadata read held around it; chunk vectors memory-mapped and streamed, FAISS fed in blocks, metadata read by
schema and UMAP fitted on at most 20,000 vectors brought it to 1,646 MiB (2026-12-02 run, machine loaded). Then
(2026-12-02) the corpus-sized structures, measured alone per 100k items (``benchmarks.memory_structures``): the
text cache 156 MiB held (str keys + a doubling [n, 128] array; 275 MiB peak) -> 5 MiB (16-byte digests in sorted
arrays, vectors in ``_build/text-cache.f32``); the corpus listing 48 MiB (an Item per row, 83 MiB while read) ->
13 MiB (Arrow columns) and dropped before finalisation; the metadata/sentence tables written part by part, not
concatenated; the IVF training sample (122 MiB for 250k sentence vectors) read by block instead of through a memory
map (whose pages, another 122 MiB, counted in RSS) and freed before the index fills. Peak RSS now 974 / 1,145 / 1,345
MiB at 1k / 10k / 100k (before: 1,082 / 1,282 / 1,646; same loaded machine, runs partly overlapping); while embedding,
the later chunks peak at the first chunk's level (-8 MiB at 100k; before +264). What is left corpus-sized: the
largest FAISS index while it is built (it IS the output: reported apart as ``largest_output_held_mib``), the IVF
training sample of an index over 200k vectors (up to 256 x nlist rows, 122 MiB for 250k, freed before it fills), the
gathered chunks' tables through finalisation (~25 MiB per 100k items) and the map step's UMAP fit, which grows up to
its 20,000-vector cap (so from 10k to 20k items) and is flat past it.

    .venv/bin/python -m benchmarks.run --only memory          # 1k, 10k and 100k items at 32 px
    .venv/bin/python -m benchmarks.run --full --only memory   # and 1k, 10k at the real 480 px
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.memory_phases import PhasedSampler

QUICK_CROP = 32  # the smallest input tiny-random takes (1 x 1 patch grid): 100k items in minutes on 2 cores
QUICK_SIZES = (1_000, 10_000, 100_000)
REPORTS = ("No acute cardiopulmonary process.", "Heart size is normal. Lungs are clear.",
           "Small left pleural effusion. No pneumothorax.", "Mild cardiomegaly with pulmonary vascular congestion.")


def write_corpus(folder: Path, n: int) -> Path:
    """``n`` small synthetic PNGs (distinct gradients + noise) and a CSV with an image path and a report per row."""
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = np.add.outer(np.arange(96), np.arange(96)).astype(np.int64)
    rows = []
    for i in range(n):
        arr = ((base * (1 + i % 7) + rng.integers(0, 40, base.shape)) % 256).astype(np.uint8)
        Image.fromarray(arr).save(images / f"s{i}.png", compress_level=1)
        rows.append(f"images/s{i}.png,\"{REPORTS[i % len(REPORTS)]} Case {i}.\"")
    csv = folder / "corpus.csv"
    csv.write_text("image_path,report\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return csv


def _model(crop: int) -> Any:
    """tiny-random at its real 480 px crop, or a reduced ``crop`` (resize = crop * 512 / 480)."""
    from cxr_explorer.retrieval.models.api import build_model
    from cxr_explorer.retrieval.models.registry import get_spec

    spec = get_spec("tiny-random")
    if crop != spec.crop:
        spec = dataclasses.replace(spec, crop=crop, resize=round(crop * spec.resize / spec.crop))
    return build_model(spec, None, "cpu", "fp32")


def child(n: int, folder: Path, chunk_size: int = 1024, crop: int = 480, batch: int = 8) -> dict[str, Any]:
    """Build ``n`` synthetic items in this process; RSS peaks per phase, after each chunk, and overall."""
    from cxr_explorer.index.runner import BuildConfig, run_build
    from cxr_explorer.retrieval.bundle.store import read_manifest

    csv = write_corpus(folder, n)
    model = _model(crop)
    with PhasedSampler() as sampler:
        t0 = time.perf_counter()
        summary = run_build(BuildConfig(corpus=csv, out=folder / "bundle", model=model.spec.name, device="cpu",
                                        precision="fp32", workers=1, threads=1, batch_size=batch, progress="none",
                                        chunk_size=chunk_size), model=model)
        wall = time.perf_counter() - t0
    manifest = read_manifest(folder / "bundle") or {}
    projections = manifest.get("projections", {})
    largest = largest_output_mib(manifest)
    peak = max(sampler.rounded_peaks().values(), default=0.0)
    return {"items": summary.count, "chunk_size": chunk_size, "crop": crop, "batch": batch, "wall_s": round(wall, 1),
            # the sampler's peak: ru_maxrss of a child started by a big parent starts at the parent's size
            "peak_rss_mib": peak, "largest_output_held_mib": largest,
            "peak_minus_largest_output_mib": round(peak - largest["mib"], 1),
            "phase_peak_rss_mib": sampler.rounded_peaks(),
            "phase_s": sampler.rounded_seconds(), "rss_after_chunk_mib": sampler.after_chunk,
            "later_chunks_over_first_mib": sampler.later_over_first(), "phases_missing": sampler.missing,
            "map_fit_vectors": projections.get("fit_vectors")}


def largest_output_mib(manifest: dict[str, Any]) -> dict[str, Any]:
    """The largest single output the job holds in memory whole: its biggest FAISS index (a flat index IS its
    [M, D] float32 vectors; IVF adds an int64 id per vector), from the manifest's counts. Patches, thumbnails and
    vector files are streamed to disk, never held whole."""
    dim = int(manifest.get("dim", 128))
    sizes = {name: info.get("count", 0) * (dim * 4 + (8 if info.get("type") == "ivf" else 0)) / 2**20
             for name, info in manifest.get("indexes", {}).items()}
    name = max(sizes, key=sizes.__getitem__, default="none")
    return {"output": f"{name} index", "mib": round(sizes.get(name, 0.0), 1)}


def structures(n: int) -> dict[str, Any]:
    """Per corpus-sized structure, MiB held for ``n`` items, measured alone in a fresh process
    (:mod:`benchmarks.memory_structures`)."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.memory_structures", str(n)], capture_output=True,
                         text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def phase_growth(rows: dict[str, Any], lo: int, hi: int) -> dict[str, float]:
    """Per phase: peak RSS at ``hi`` items minus at ``lo`` items, as MiB per 100,000 items (0 = flat)."""
    a, b = rows[str(lo)]["phase_peak_rss_mib"], rows[str(hi)]["phase_peak_rss_mib"]
    scale = 100_000 / max(hi - lo, 1)
    return {k: round((b[k] - a[k]) * scale, 1) for k in b if k in a}


def run_sizes(sizes: tuple[int, ...], chunk_size: int, crop: int) -> dict[str, Any]:
    """One child process per size; peak growth per 1,000 items between the smallest and the largest size, and per
    phase between the second size and the largest (both past the first chunk: flat means about 0)."""
    rows: dict[str, Any] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", str(n), tmp,
                                  "--chunk-size", str(chunk_size), "--crop", str(crop)],
                                 capture_output=True, text=True, check=True)
            rows[str(n)] = json.loads(out.stdout.strip().splitlines()[-1])
    lo, hi = rows[str(sizes[0])], rows[str(sizes[-1])]
    scale = max((sizes[-1] - sizes[0]) / 1000, 1e-9)
    per_k = (hi["peak_rss_mib"] - lo["peak_rss_mib"]) / scale
    overhead_k = (hi["peak_minus_largest_output_mib"] - lo["peak_minus_largest_output_mib"]) / scale
    past = sizes[1] if len(sizes) > 2 else sizes[0]
    return {"sizes": rows, "crop": crop, "peak_growth_mib_per_1000_items": round(per_k, 2),
            "peak_minus_largest_output_growth_mib_per_1000_items": round(overhead_k, 2),
            "peak_minus_largest_output_mib": {n: r["peak_minus_largest_output_mib"] for n, r in rows.items()},
            "structures": structures(sizes[-1]),
            f"phase_peak_growth_mib_per_100k_items_{past}_to_{sizes[-1]}": phase_growth(rows, past, sizes[-1])}


def run_memory(smoke: bool, full: bool = False, sizes: tuple[int, ...] | None = None, chunk_size: int = 1024
               ) -> dict[str, Any]:
    """smoke: 40 / 120 items in chunks of 40 at 480 px; quick: 1k / 10k / 100k at :data:`QUICK_CROP`; full: adds
    1k / 10k at the real 480 px crop (the real patch bytes per item in the chunk being filled)."""
    if smoke:
        sizes, chunk_size = sizes or (40, 120), 40
        main = run_sizes(sizes, chunk_size, 480)
    else:
        main = run_sizes(sizes or QUICK_SIZES, chunk_size, QUICK_CROP)
    out: dict[str, Any] = {**main, "chunk_size": chunk_size,
                           "model": "tiny-random (real-size outputs; small weights), batch 8, 1 thread, "
                                    "1 decode worker; synthetic 96 px PNGs"}
    if full:
        out["real_crop_480"] = run_sizes((1_000, 10_000), chunk_size, 480)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    p.add_argument("--child", nargs=2, metavar=("N", "FOLDER"), required=True)
    p.add_argument("--chunk-size", type=int, default=1024)
    p.add_argument("--crop", type=int, default=480)
    args = p.parse_args(argv)
    print(json.dumps(child(int(args.child[0]), Path(args.child[1]), args.chunk_size, args.crop)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak RSS of a whole build vs corpus size: memory must be bounded by the chunk, not the corpus.

Each size runs in a fresh process (``python -m benchmarks.memory --child N FOLDER``) so its peak RSS is its own:
``index.runner.run_build`` with the ``tiny-random`` model (BioViL's classes at tiny widths, 128-d vectors) on N
synthetic grayscale PNGs with one-line reports (every report distinct: the text cache's worst case), chunks of 1,024
items, including finalisation. The quick run uses :data:`QUICK_CROP` (32 px: a 1 x 1 patch grid, so 100k items
build in minutes on 2 cores; every per-item byte but the patches is real-size); ``--full`` adds 1k and 10k at the real
480 px crop (15 x 15 x 128 patches: the real bytes of the chunk being filled).

A sampler thread reads the process's RSS every 50 ms; the peak is kept per phase (:class:`PhasedSampler`), and
after each committed chunk (``rss_after_chunk_mib``); ``phase_peak_growth_mib_per_100k_*`` is each phase's peak growth
between the 10k and the 100k build, per 100k items (0 = flat). The largest FAISS index is the job's output: reported
apart (``largest_output_held_mib``) and subtracted (``peak_minus_largest_output_mib``).

    .venv/bin/python -m benchmarks.run --only memory          # 1k, 10k and 100k items at 32 px
    .venv/bin/python -m benchmarks.run --full --only memory   # and 1k, 10k at the real 480 px
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import current_rss_mib

QUICK_CROP = 32  # the smallest input tiny-random takes (1 x 1 patch grid): 100k items in minutes on 2 cores
QUICK_SIZES = (1_000, 10_000, 100_000)
REPORTS = ("No acute cardiopulmonary process.", "Heart size is normal. Lungs are clear.",
           "Small left pleural effusion. No pneumothorax.", "Mild cardiomegaly with pulmonary vascular congestion.")


#: (module, attribute, phase entered when it is called); the order is the order a build runs them in.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("cxr_explorer.index.runner", "_embed_all", "embed_first_chunk"),
    ("cxr_explorer.index.runner", "finalise_build", "finalise_gather_chunks"),
    ("cxr_explorer.retrieval.bundle.store.parts", "_write_tables", "finalise_tables_vectors"),
    ("cxr_explorer.retrieval.bundle.store.parts", "_write_patches", "finalise_patches"),
    ("cxr_explorer.retrieval.bundle.store.parts", "_write_thumbs", "finalise_thumbnails"),
    ("cxr_explorer.retrieval.bundle.writer", "build_index", "finalise_faiss"),
    ("cxr_explorer.retrieval.maps.projection", "write_projections", "finalise_projections"),
)
SHARED_WITH_COMMIT = ("cxr_explorer.retrieval.bundle.store.parts",)
AFTER: dict[str, str] = {"_write_thumbs": "finalise_write_rest", "write_projections": "finalise_manifest_install",
                         "write_version": "reopen_bundle"}


class PhasedSampler:
    """RSS peaks (MiB) and seconds per phase, RSS after each committed chunk (benchmark-side instrumentation only).

    Phases are marked by wrapping the build's own functions for the duration of the ``with`` block (restored on
    exit; production code has no hooks): the embed loop, each chunk commit, and finalisation's steps (the file
    writers a chunk commit shares with finalisation count as finalise phases only once finalising began). A function
    the build no longer has is listed in ``missing`` instead of failing the run."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s = every_s
        self.phase = "startup"
        self.peaks: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.after_chunk: list[float] = []
        self.missing: list[str] = []
        self.finalising = False
        self._since = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._restore: list[tuple[Any, str, Any]] = []

    def set_phase(self, phase: str) -> None:
        """Enter ``phase`` (the RSS right now counts in the phase being left and in the new one)."""
        self.finalising = self.finalising or phase.startswith("finalise_")
        with self._lock:
            now, rss = time.perf_counter(), current_rss_mib()
            self._note(rss)
            self.seconds[self.phase] = self.seconds.get(self.phase, 0.0) + now - self._since
            self.phase, self._since = phase, now
            self._note(rss)

    def _note(self, rss: float) -> None:
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._note(current_rss_mib())
            time.sleep(self.every_s)

    def _wrap(self, owner: Any, attr: str, phase: str, after: str | None) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def wrapped(*args: Any, **kw: Any) -> Any:
            if owner.__name__ in SHARED_WITH_COMMIT and not self.finalising:  # a chunk commit writes them too
                return original(*args, **kw)
            self.set_phase(phase)
            try:
                return original(*args, **kw)
            finally:
                if after:
                    self.set_phase(after)

        setattr(owner, attr, wrapped)
        self._restore.append((owner, attr, original))

    def _committed(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def commit(store: Any, *args: Any, **kw: Any) -> Any:
            out = original(store, *args, **kw)
            self.after_chunk.append(round(current_rss_mib(), 1))
            if self.phase == "embed_first_chunk":
                self.set_phase("embed_later_chunks")
            return out
        return commit

    def __enter__(self) -> PhasedSampler:
        for module, attr, phase in PHASES:
            mod = importlib.import_module(module)
            if hasattr(mod, attr):
                self._wrap(mod, attr, phase, AFTER.get(attr))
            else:
                self.missing.append(f"{module}.{attr}")
        finalise = importlib.import_module("cxr_explorer.index.finalise")
        self._wrap(finalise, "write_version", "finalise_write_start", AFTER["write_version"])
        chunks = importlib.import_module("cxr_explorer.index.build_state")
        self._restore.append((chunks.ChunkStore, "commit", chunks.ChunkStore.commit))
        chunks.ChunkStore.commit = self._committed(chunks.ChunkStore.commit)  # type: ignore[method-assign]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.set_phase("done")
        self._stop.set()
        self._thread.join()
        for owner, attr, original in reversed(self._restore):
            setattr(owner, attr, original)

    def rounded_peaks(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in self.peaks.items() if k != "done"}

    def rounded_seconds(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self.seconds.items()}

    def later_over_first(self) -> float | None:
        """Peak RSS while embedding the later chunks minus the first chunk's (MiB); None with one chunk."""
        first, later = self.peaks.get("embed_first_chunk"), self.peaks.get("embed_later_chunks")
        return round(later - first, 1) if first is not None and later is not None else None


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

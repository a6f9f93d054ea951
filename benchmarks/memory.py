"""Peak RSS of a whole build vs corpus size: memory must be bounded by the chunk, not the corpus.

Each size runs in a fresh process (``python -m benchmarks.memory --child N FOLDER``) so its peak RSS is its own:
``index.runner.run_build`` with the ``tiny-random`` model (BioViL's classes at tiny widths: real 480 px input, real
15 x 15 x 128 patch grid and 128-d vectors, so every per-item byte the job stores is real-size; only the model's own
weights and FLOPs are small) on N synthetic grayscale PNGs with one-line reports, chunks of 1,024 items, including
finalisation (FAISS indexes, thumbnails, patch file). A sampler thread records RSS every 50 ms and the peak per
phase (embedding, finalise). Flat means: peak(10k) - peak(1k) small next to 9,000 x the ~66 KB an item occupies in
a chunk buffer.

    .venv/bin/python -m benchmarks.run --only memory        # 1k and 10k items (--full adds 100k)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import current_rss_mib, peak_rss_mib

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


class Sampler:
    """Samples this process's RSS every ``every_s`` seconds; ``peaks`` per named phase (MiB)."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s, self.phase, self.peaks = every_s, "start", {}  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = current_rss_mib()
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)
            time.sleep(self.every_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def child(n: int, folder: Path, chunk_size: int = 1024) -> dict[str, Any]:
    """Build ``n`` synthetic items in this process; RSS peaks per phase and overall."""
    import index.finalise as finalise
    from index.runner import BuildConfig, run_build

    csv = write_corpus(folder, n)
    with Sampler() as sampler:
        original = finalise.finalise_parts

        def phased(*args: Any, **kw: Any) -> Any:  # benchmark-side wrapper: marks the finalise phase
            sampler.phase = "finalise"
            return original(*args, **kw)

        finalise.finalise_parts = phased  # type: ignore[assignment]
        sampler.phase = "embed"
        t0 = time.perf_counter()
        summary = run_build(BuildConfig(corpus=csv, out=folder / "bundle", model="tiny-random", device="cpu",
                                        precision="fp32", workers=1, threads=1, progress="none", chunk_size=chunk_size))
        wall = time.perf_counter() - t0
    return {"items": summary.count, "chunk_size": chunk_size, "wall_s": round(wall, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "phase_peak_rss_mib": {k: round(v, 1) for k, v in sampler.peaks.items()}}


def run_memory(smoke: bool, full: bool = False, sizes: tuple[int, ...] | None = None, chunk_size: int = 1024
               ) -> dict[str, Any]:
    """One child process per size; the growth per 1,000 items past the first chunk."""
    sizes = sizes or ((40, 120) if smoke else (1_000, 10_000, 100_000) if full else (1_000, 10_000))
    rows: dict[str, Any] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", str(n), tmp,
                                  "--chunk-size", str(chunk_size)],
                                 capture_output=True, text=True, check=True)
            rows[str(n)] = json.loads(out.stdout.strip().splitlines()[-1])
    lo, hi = rows[str(sizes[0])], rows[str(sizes[-1])]
    per_k = (hi["peak_rss_mib"] - lo["peak_rss_mib"]) / max((sizes[-1] - sizes[0]) / 1000, 1e-9)
    return {"sizes": rows, "chunk_size": chunk_size, "peak_growth_mib_per_1000_items": round(per_k, 2),
            "model": "tiny-random (real-size inputs and outputs; small weights)"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    p.add_argument("--child", nargs=2, metavar=("N", "FOLDER"), required=True)
    p.add_argument("--chunk-size", type=int, default=1024)
    args = p.parse_args(argv)
    print(json.dumps(child(int(args.child[0]), Path(args.child[1]), args.chunk_size)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

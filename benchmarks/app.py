"""The app through Streamlit's AppTest (the real app script): its speed (``app``) and its memory at scale
(``app_scale``).

``app``, in process: the server-side time of a new text search and of a grounding update beyond the text encoder's
own time (measured and subtracted, as the targets are stated beyond it), and the process RSS with the bundle loaded.

``app_scale``: a child process writes an N-item bundle (its [N, 15, 15, 128] float16 patches, 5.8 GB at 100k,
generated block by block into a memory-mapped .npy and streamed into the bundle); a second, fresh child runs the app
and reads its RSS at each step: Python + Streamlit imported, the app's first run (Engine, FAISS indexes, metadata
loaded; patches memory-mapped), one text search, the Grounding page opened, one grounding phrase. That bundle stores
PCA map coordinates only (Search and Grounding never read them). ``real_weights_mib``: the fp32 parameter bytes of
the real-size BioViL, which the real weights add to the tiny model's.

Both bundles are synthetic (clustered unit vectors, random fp16 patch grids, one shared 512 px image) and name the
``tiny-random`` model: the engine, FAISS, patch memory-map, heatmaps, PNG overlays and page rendering are the real
ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from benchmarks.common import current_rss_mib, ms_stats
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.webapp.settings import BUNDLES_ENV

REPO = Path(__file__).resolve().parents[1]
TARGET_SEARCH_MS, TARGET_GROUND_MS = 300.0, 150.0
SENTENCES = ["Small left pleural effusion.", "No pneumothorax.", "Right lower lobe consolidation.",
             "Heart size is normal.", "Mild pulmonary edema.", "Left basal atelectasis.", "No acute process.",
             "Cardiomegaly.", "Patchy bilateral opacities.", "Stable mediastinal contours."]
QUERIES = ["left pleural effusion", "right lower lobe pneumonia", "cardiomegaly with edema", "pneumothorax",
           "bilateral patchy opacities", "no acute findings", "left basal atelectasis", "enlarged heart",
           "small effusion on the right", "diffuse interstitial pattern", "lobar consolidation", "normal chest"]


def synthetic_bundle(root: Path, n: int, seed: int = 0, patches: np.ndarray | None = None) -> Path:
    """Write an ``n``-item bundle for timing (see the module docstring); ``patches`` [n, 15, 15, 128] float16 (e.g.
    memory-mapped, :func:`streamed_patches`) instead of random ones generated in memory."""
    from cxr_explorer.index.decode import thumbnail_jpeg
    from cxr_explorer.retrieval.bundle.writer import write_bundle
    from cxr_explorer.retrieval.models import load_model

    model = load_model("tiny-random", device="cpu")
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    img = Image.new("L", (512, 512), 30)
    ImageDraw.Draw(img).ellipse([100, 80, 420, 460], fill=160)
    img.save(root / "case.png")
    thumb = thumbnail_jpeg(img)

    def unit(m: int) -> np.ndarray:
        centres = rng.standard_normal((64, 128)).astype(np.float32)
        v = centres[rng.integers(0, 64, m)] + 0.5 * rng.standard_normal((m, 128)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    picks = rng.integers(0, len(SENTENCES), (n, 2))
    reports = [f"{SENTENCES[a]} {SENTENCES[b]}" for a, b in picks]
    sentences = pd.DataFrame({"row": np.repeat(np.arange(n), 2), "text": [SENTENCES[i] for i in picks.ravel()]})
    if patches is None:
        patches = unit_patches(rng, n)
    meta = pd.DataFrame({"id": [f"c{i}" for i in range(n)], "path": [str(root / "case.png")] * n, "report": reports,
                         "view": rng.choice(["PA", "AP", "LAT"], n), "labels": rng.choice(["Effusion", "Edema"], n),
                         "width": 512, "height": 512})
    return write_bundle(root / "bundle", identity=model.identity.to_dict(), spec=model.spec.to_dict(),
                        preprocessing=model.preprocessing.to_dict(), grid_shape=(15, 15), metadata=meta,
                        sentences=sentences, image_emb=unit(n), report_emb=unit(n), report_rows=np.arange(n),
                        sentence_emb=unit(2 * n), patches=patches, thumbnails=[thumb] * n, skipped=[],
                        build={"command": "benchmarks/app.py"})


class _EncoderClock:
    """Accumulates the time spent in ``VLModel.embed_texts`` while installed."""

    def __enter__(self) -> _EncoderClock:
        from cxr_explorer.retrieval.models.api import VLModel

        self.total, self._orig, clock = 0.0, VLModel.embed_texts, self

        def timed(model: Any, texts: Any, normalize: bool = True) -> Any:
            start = time.perf_counter()
            try:
                return clock._orig(model, texts, normalize)
            finally:
                clock.total += time.perf_counter() - start

        VLModel.embed_texts = timed  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        from cxr_explorer.retrieval.models.api import VLModel

        VLModel.embed_texts = self._orig  # type: ignore[method-assign]


def _beyond(at: Any, clock: _EncoderClock) -> float:
    """Seconds of ``at.run()`` beyond the text encoder."""
    clock.total = 0.0
    start = time.perf_counter()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return time.perf_counter() - start - clock.total


def time_app(bundle: Path, n_queries: int) -> dict[str, Any]:
    """Median/p95 ms beyond the encoder for new searches and grounding updates, and the RSS afterwards."""
    from streamlit.testing.v1 import AppTest

    os.environ[BUNDLES_ENV] = str(bundle)
    at = AppTest.from_file(str(REPO / "webapp" / "app.py"), default_timeout=300)
    at.run()  # loads the engine (cached for the process)
    search, ground = [], []
    with _EncoderClock() as clock:
        for q in QUERIES[:n_queries]:
            at.text_area(key="s_text").set_value(q)
            next(b for b in at.button if b.label == "Search").click()
            search.append(_beyond(at, clock))
        at.switch_page("views/grounding/page.py").run()
        for q in QUERIES[:n_queries]:
            at.text_input(key="g_phrases").set_value(q)
            ground.append(_beyond(at, clock))
    s, g = ms_stats(search), ms_stats(ground)
    return {"search_beyond_encoder": s, "grounding_beyond_encoder": g,
            "rss_mib_with_bundle": round(current_rss_mib(), 1),
            "targets_ms": {"search": TARGET_SEARCH_MS, "grounding": TARGET_GROUND_MS},
            "met": {"search": s["p50_ms"] <= TARGET_SEARCH_MS, "grounding": g["p50_ms"] <= TARGET_GROUND_MS}}


def run_app(tmp: Path, n_items: int, n_queries: int) -> dict[str, Any]:
    """The app section: build the synthetic bundle, then time through AppTest."""
    start = time.perf_counter()
    bundle = synthetic_bundle(tmp / f"app-{n_items}", n_items)
    out = {"items": n_items, "bundle_build_s": round(time.perf_counter() - start, 1), **time_app(bundle, n_queries),
           "method": "streamlit AppTest in process; text-encoder time (VLModel.embed_texts) subtracted; synthetic "
                     "bundle naming tiny-random"}
    return out


BLOCK = 2_000


def unit_patches(rng: np.random.Generator, n: int) -> np.ndarray:
    """``[n, 15, 15, 128]`` float16 random patch vectors, L2-normalised as a build stores them (a reader refuses
    similarities beyond [-1, 1])."""
    x = rng.standard_normal((n, 15, 15, 128), dtype=np.float32)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float16)


def streamed_patches(path: Path, n: int, seed: int) -> np.ndarray:
    """A ``[n, 15, 15, 128]`` float16 .npy at ``path`` filled block by block; returned memory-mapped (read-only)."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, 15, 15, 128))
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        out[start:start + m] = unit_patches(rng, m)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def write_child(root: Path, n: int) -> None:
    """Write the ``n``-item bundle under ``root`` with PCA map coordinates only (run in its own process)."""
    from cxr_explorer.retrieval.maps import projection

    projection.umap_coords = lambda *args, **kw: None  # benchmark-side: this writer process only
    patches = streamed_patches(root / "patches-tmp.npy", n, seed=1)
    synthetic_bundle(root, n, patches=patches)
    (root / "patches-tmp.npy").unlink()


def measure_child(bundle: Path) -> dict[str, Any]:
    """RSS (MiB) of this process at each step of the app flow, and the step's seconds."""
    steps: dict[str, Any] = {}

    def step(name: str, t0: float) -> None:
        steps[name] = {"rss_mib": round(current_rss_mib(), 1), "s": round(time.perf_counter() - t0, 2)}

    t0 = time.perf_counter()
    from streamlit.testing.v1 import AppTest

    step("python_streamlit_imported", t0)
    os.environ[BUNDLES_ENV] = str(bundle)
    at = AppTest.from_file(str(REPO / "webapp" / "app.py"), default_timeout=900)
    t0 = time.perf_counter()
    at.run()
    step("app_opened_on_bundle", t0)
    t0 = time.perf_counter()
    at.text_area(key="s_text").set_value(QUERIES[0])
    next(b for b in at.button if b.label == "Search").click()
    at.run()
    step("after_search", t0)
    t0 = time.perf_counter()
    at.switch_page("views/grounding/page.py").run()
    step("grounding_page_opened", t0)
    t0 = time.perf_counter()
    at.text_input(key="g_phrases").set_value(QUERIES[1])
    at.run()
    step("after_grounding", t0)
    errors = [str(e.value)[:200] for e in at.exception]
    return {"steps": steps, "errors": errors}


def real_weights_mib() -> float:
    """fp32 parameter bytes of the real-size BioViL (ResNet-50 + BERT-base + heads), MiB."""
    from benchmarks.common import seeded_model

    model = seeded_model("biovil")
    n = sum(p.numel() for m in (model.image_model, model.text_model) for p in m.parameters())
    return round(n * 4 / 2**20, 1)


def run_app_scale(n: int) -> dict[str, Any]:
    """Write the bundle (PCA map only), then measure the app in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmarks.app", "--write", str(root), str(n)], check=True,
                       capture_output=True, text=True)
        write_s = time.perf_counter() - t0
        bundle = root / "bundle"
        with Bundle.open(bundle) as opened:
            patches = opened.patches()  # [N, h, w, D] float16, memory-mapped (nothing read)
            patches_mib = patches.nbytes / 2**20 if isinstance(patches, np.ndarray) else None
        disk = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 2**20
        out = subprocess.run([sys.executable, "-m", "benchmarks.app", "--measure", str(bundle)], check=True,
                             capture_output=True, text=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
    final = res["steps"]["after_grounding"]["rss_mib"]
    return {"items": n, "map": "PCA only (UMAP not fitted)",
            "bundle_write_s": round(write_s, 1), "bundle_disk_mib": round(disk, 1),
            "patches_file_mib": round(patches_mib, 1) if patches_mib else None, **res,
            "rss_mib_after_search_and_grounding": final,
            "rss_over_patch_file": round(final / patches_mib, 3) if patches_mib else None,
            "real_weights_mib": real_weights_mib(),
            "method": "streamlit AppTest in a fresh process (the real app script; patches memory-mapped by "
                      "cxr_explorer.retrieval.bundle.reader.Bundle.patches); synthetic bundle naming tiny-random; "
                      "the machine's load at the start is in the results header"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.app")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", nargs=2, metavar=("ROOT", "N"))
    g.add_argument("--measure", metavar="BUNDLE")
    args = p.parse_args(argv)
    if args.write:
        write_child(Path(args.write[0]), int(args.write[1]))
    else:
        print(json.dumps(measure_child(Path(args.measure))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

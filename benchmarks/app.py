"""App timings through the running app (Streamlit's AppTest, in process): the server-side time of a new text search
and of a grounding update beyond the text encoder's own time, and the process RSS with the bundle loaded.

The bundle is synthetic (clustered unit vectors, random fp16 patch grids, one shared 512 px image) and names the
``tiny-random`` model: the engine, FAISS, patch memory-map, heatmaps, PNG overlays and page rendering are the real
ones; the text encoder's time is measured and subtracted, as the targets are stated beyond it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cxr_explorer.webapp.settings import BUNDLES_ENV
from PIL import Image, ImageDraw

from benchmarks.common import current_rss_mib, ms_stats

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
    memory-mapped, :mod:`benchmarks.app_scale`) instead of random ones generated in memory."""
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
        patches = rng.standard_normal((n, 15, 15, 128), dtype=np.float32).astype(np.float16)
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
            at.text_input(key="s_text").set_value(q)
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

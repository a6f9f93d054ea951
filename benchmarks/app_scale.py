"""The app's memory at scale: RSS of the app process opened on a 100k-item bundle, after a search and a grounding.

A child process writes the synthetic bundle (:func:`benchmarks.app.synthetic_bundle`'s content; the [N, 15, 15, 128]
float16 patches, 5.8 GB at 100k, are generated block by block into a memory-mapped .npy and streamed into the
bundle, so the writer never holds them). A second, fresh child runs the real app script through Streamlit's
AppTest (in process, as ``benchmarks.app`` does) and reads its RSS at each step: Python + Streamlit imported, the
app's first run (Engine, FAISS indexes, metadata loaded; patches memory-mapped), one text search, the Grounding
page opened, one grounding phrase. The bundle stores PCA map coordinates only (Search and Grounding never read
them; the UMAP fit, bounded to 20,000 vectors, would add about 3 minutes at 100k on a loaded 2-core machine).
The bundle names ``tiny-random``, so the model weights are tiny: the real BioViL weights add their own size
(``real_weights_mib``: parameter bytes of the real-size architecture at fp32).

    .venv/bin/python -m benchmarks.run --only app_scale          # 100k items (quick and full)
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
from cxr_explorer.retrieval.bundle.reader import Bundle

from benchmarks.app import QUERIES, REPO
from benchmarks.common import current_rss_mib

BLOCK = 2_000


def streamed_patches(path: Path, n: int, seed: int) -> np.ndarray:
    """A ``[n, 15, 15, 128]`` float16 .npy at ``path`` filled block by block; returned memory-mapped (read-only)."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, 15, 15, 128))
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        out[start:start + m] = rng.standard_normal((m, 15, 15, 128), dtype=np.float32).astype(np.float16)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def write_child(root: Path, n: int, umap: bool) -> None:
    """Write the ``n``-item bundle under ``root`` (run in its own process); ``umap=False`` stores PCA map
    coordinates only (Search and Grounding never read the map coordinates)."""
    from cxr_explorer.retrieval.maps import projection

    from benchmarks import app

    if not umap:
        projection.umap_coords = lambda *args, **kw: None  # benchmark-side: this writer process only
    patches = streamed_patches(root / "patches-tmp.npy", n, seed=1)
    app.synthetic_bundle(root, n, patches=patches)
    (root / "patches-tmp.npy").unlink()


def _rss() -> float:
    return round(current_rss_mib(), 1)


def measure_child(bundle: Path) -> dict[str, Any]:
    """RSS (MiB) of this process at each step of the app flow, and the step's seconds."""
    steps: dict[str, Any] = {}

    def step(name: str, t0: float) -> None:
        steps[name] = {"rss_mib": _rss(), "s": round(time.perf_counter() - t0, 2)}

    t0 = time.perf_counter()
    from streamlit.testing.v1 import AppTest

    step("python_streamlit_imported", t0)
    os.environ["CXR_EXPLORER_BUNDLES"] = str(bundle)
    at = AppTest.from_file(str(REPO / "webapp" / "app.py"), default_timeout=900)
    t0 = time.perf_counter()
    at.run()
    step("app_opened_on_bundle", t0)
    t0 = time.perf_counter()
    at.text_input(key="s_text").set_value(QUERIES[0])
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


def run_app_scale(n: int, umap: bool = False) -> dict[str, Any]:
    """Write the bundle (PCA map only unless ``umap``), then measure the app in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmarks.app_scale", "--write", str(root), str(n)]
                       + ([] if umap else ["--no-umap"]), check=True, capture_output=True, text=True)
        write_s = time.perf_counter() - t0
        bundle = root / "bundle"
        with Bundle.open(bundle) as opened:
            patches = opened.patches()  # [N, h, w, D] float16, memory-mapped (nothing read)
            patches_mib = patches.nbytes / 2**20 if isinstance(patches, np.ndarray) else None
        disk = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 2**20
        out = subprocess.run([sys.executable, "-m", "benchmarks.app_scale", "--measure", str(bundle)], check=True,
                             capture_output=True, text=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
    final = res["steps"]["after_grounding"]["rss_mib"]
    return {"items": n, "map": "PCA and UMAP" if umap else "PCA only (UMAP not fitted)",
            "bundle_write_s": round(write_s, 1), "bundle_disk_mib": round(disk, 1),
            "patches_file_mib": round(patches_mib, 1) if patches_mib else None, **res,
            "rss_mib_after_search_and_grounding": final,
            "rss_over_patch_file": round(final / patches_mib, 3) if patches_mib else None,
            "real_weights_mib": real_weights_mib(),
            "method": "streamlit AppTest in a fresh process (the real app script; patches memory-mapped by "
                      "cxr_explorer.retrieval.bundle.reader.Bundle.patches); synthetic bundle naming tiny-random; "
                      "the machine's load at the start is in the results header"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.app_scale")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", nargs=2, metavar=("ROOT", "N"))
    g.add_argument("--measure", metavar="BUNDLE")
    p.add_argument("--no-umap", action="store_true", help="with --write: PCA map coordinates only")
    args = p.parse_args(argv)
    if args.write:
        write_child(Path(args.write[0]), int(args.write[1]), umap=not args.no_umap)
    else:
        print(json.dumps(measure_child(Path(args.measure))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

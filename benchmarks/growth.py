"""Growth: single-query latency, recall@10 and memory of each index type at 10k / 100k / 1M vectors, and the
compact int8 patch store (map error, disk at MIMIC-CXR size).

Vectors are :func:`benchmarks.query.clustered_vectors` (clustered like real embeddings). flat / ivf / hnsw are built
by :func:`retrieval.bundle.writer.build_index` with the bundle's own search settings; HNSW at 1M only in ``--full`` (its
build takes minutes). Memory = serialised index bytes and the process RSS growth while the index is built and held.
Build time per corpus size is the ``memory`` section's ``wall_s`` (same command, ``--only growth memory``).

    .venv/bin/python -m benchmarks.run --only growth memory
"""

from __future__ import annotations

import gc
import time
from typing import Any

import faiss
import numpy as np
import torch

from benchmarks.common import QUERY_PHRASES, current_rss_mib, ms_stats, time_calls
from benchmarks.query import DIM, clustered_vectors, recall_at_10
from cxr_explorer.retrieval.bundle.reader import apply_search_params
from cxr_explorer.retrieval.bundle.store.patch_store import decode_int8, encode_int8

MIMIC_IMAGES = 377_110


def _one(kind: str, x: np.ndarray, q: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    from cxr_explorer.retrieval.bundle.writer import build_index

    gc.collect()
    rss0 = current_rss_mib()
    t0 = time.perf_counter()
    index, info = build_index(x, kind, use_gpu=False)
    params = info["params"]
    apply_search_params(index, params)
    build_s = time.perf_counter() - t0
    search = time_calls(lambda i: index.search(q[i % len(q)][None], 10), 100, warmup=3)
    row: dict[str, Any] = {"params": params, "build_s": round(build_s, 1), "search": ms_stats(search),
                           "recall_at_10": round(recall_at_10(index, exact, q), 4),
                           "index_mib": round(faiss.serialize_index(index).size / 2**20, 1),
                           "rss_growth_mib": round(current_rss_mib() - rss0, 1)}
    return row


def index_growth(sizes: tuple[int, ...], hnsw_max: int) -> dict[str, Any]:
    """The latency / recall / memory table over ``sizes`` x index types."""
    out: dict[str, Any] = {}
    for n in sizes:
        x = clustered_vectors(n, seed=n)
        q = clustered_vectors(200, seed=n + 1)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(x)
        _, exact = flat.search(q, 10)
        del flat
        rows: dict[str, Any] = {}
        for kind in ["flat", "ivf"] + (["hnsw"] if n <= hnsw_max else []):
            rows[kind] = _one(kind, x, q, exact)
        out[str(n)] = rows
        del x
    return out


def patch_store(model: Any, n_images: int = 8) -> dict[str, Any]:
    """Max |map(int8 patches) - map(float16 patches)| over phrases and images."""
    from cxr_explorer.retrieval.grounding.maps import grid_maps

    crop = model.spec.crop
    x = torch.rand((n_images, 3, crop, crop), generator=torch.Generator().manual_seed(3))
    patches = model.encode_images(x).patches.numpy().astype(np.float16)
    texts = model.embed_texts(list(QUERY_PHRASES))
    encoded = encode_int8(patches)
    decoded = torch.from_numpy(decode_int8(*encoded))
    ref16 = torch.from_numpy(patches.astype(np.float32))
    worst = max(float(np.abs(grid_maps(decoded, t) - grid_maps(ref16, t)).max()) for t in texts)
    # bytes per image of the codec's own arrays (int8 values + their scales) against the float16 patches
    fp16, int8 = (nbytes / n_images * MIMIC_IMAGES / 1e9 for nbytes in (patches.nbytes,
                                                                        sum(a.nbytes for a in encoded)))
    return {"max_map_diff": round(worst, 5), "within_0_01": worst <= 0.01, "images": n_images,
            "phrases": len(texts), f"disk_gb_{MIMIC_IMAGES}_images": {"fp16": round(fp16, 1), "int8": round(int8, 1)},
            "note": "codec retrieval/bundle/store/patch_store.py; the bundle stores it with `build --patch-store int8`"}


def run_growth(model: Any, smoke: bool, full: bool = False) -> dict[str, Any]:
    """The growth section: index table and the patch-store figures."""
    sizes = (2_000,) if smoke else (10_000, 100_000, 1_000_000)
    return {"indexes": index_growth(sizes, hnsw_max=10**9 if full or smoke else 100_000),
            "patch_store": patch_store(model, 2 if smoke else 8),
            "vectors": "synthetic clustered (benchmarks.query.clustered_vectors)", "queries": 200,
            "build_time": "see the memory section (wall_s per corpus size, same job)"}

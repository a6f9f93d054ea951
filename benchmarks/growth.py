"""Growth: single-query latency, recall@10 and memory of each index type at 10k / 100k / 1M vectors, IVF-PQ as a
candidate (kept only if recall@10 >= 0.95), and the compact int8 patch store (map error).

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
from cxr_explorer.retrieval.bundle.reader import apply_search_params
from cxr_explorer.retrieval.bundle.store.patch_store import decode_int8, encode_int8

from benchmarks.common import QUERY_PHRASES, current_rss_mib, ms_stats, time_calls
from benchmarks.query import DIM, clustered_vectors, recall_at_10

RECALL_MIN_PQ = 0.95


def _ivfpq(x: np.ndarray, nprobe_like: dict[str, Any]) -> tuple[faiss.Index, dict[str, Any]]:
    """IVF-PQ with the IVF index's nlist/nprobe and 32 sub-quantisers of 8 bits (32 bytes a vector)."""
    n = len(x)
    nlist = int(nprobe_like.get("nlist", max(1, int(4 * np.sqrt(n)))))
    index = faiss.index_factory(DIM, f"IVF{nlist},PQ32", faiss.METRIC_INNER_PRODUCT)
    index.train(x[: min(n, 256 * nlist)])
    index.add(x)
    nprobe = int(nprobe_like.get("nprobe", max(1, nlist // 8)))
    faiss.extract_index_ivf(index).nprobe = nprobe
    return index, {"nlist": nlist, "nprobe": nprobe, "m": 32}


def _one(kind: str, x: np.ndarray, q: np.ndarray, exact: np.ndarray, ivf_params: dict[str, Any]) -> dict[str, Any]:
    from cxr_explorer.retrieval.bundle.writer import build_index

    gc.collect()
    rss0 = current_rss_mib()
    t0 = time.perf_counter()
    if kind == "ivfpq":
        index, params = _ivfpq(x, ivf_params)
    else:
        index, info = build_index(x, kind, use_gpu=False)
        params = info["params"]
        apply_search_params(index, params)
    build_s = time.perf_counter() - t0
    search = time_calls(lambda i: index.search(q[i % len(q)][None], 10), 100, warmup=3)
    row: dict[str, Any] = {"params": params, "build_s": round(build_s, 1), "search": ms_stats(search),
                           "recall_at_10": round(recall_at_10(index, exact, q), 4),
                           "index_mib": round(faiss.serialize_index(index).size / 2**20, 1),
                           "rss_growth_mib": round(current_rss_mib() - rss0, 1)}
    if kind == "ivfpq":
        row["kept"] = row["recall_at_10"] >= RECALL_MIN_PQ
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
        kinds = ["flat", "ivf", "ivfpq"] + (["hnsw"] if n <= hnsw_max else [])
        for kind in kinds:
            rows[kind] = _one(kind, x, q, exact, rows.get("ivf", {}).get("params", {}))
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
    decoded = torch.from_numpy(decode_int8(*encode_int8(patches)))
    ref16 = torch.from_numpy(patches.astype(np.float32))
    worst = max(float(np.abs(grid_maps(decoded, t) - grid_maps(ref16, t)).max()) for t in texts)
    return {"max_map_diff": round(worst, 5), "within_0_01": worst <= 0.01, "images": n_images,
            "phrases": len(texts),
            "note": "codec retrieval/bundle/store/patch_store.py; the bundle stores it with `build --patch-store int8`"}


def run_growth(model: Any, smoke: bool, full: bool = False) -> dict[str, Any]:
    """The growth section: index table and the patch-store figures."""
    sizes = (2_000,) if smoke else (10_000, 100_000, 1_000_000)
    return {"indexes": index_growth(sizes, hnsw_max=10**9 if full or smoke else 100_000),
            "patch_store": patch_store(model, 2 if smoke else 8),
            "vectors": "synthetic clustered (benchmarks.query.clustered_vectors)", "queries": 200,
            "build_time": "see the memory section (wall_s per corpus size, same job)"}

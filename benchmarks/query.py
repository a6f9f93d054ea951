"""Query latency per bundle size and index type: text encode, FAISS search, total; recall@10; index memory.

Vectors beyond the corpus size are synthetic but clustered like real embeddings: a few hundred random centres on the
unit sphere plus Gaussian noise, L2-normalised. Indexes are built with :func:`retrieval.bundle.writer.build_index` (the
bundle's own builder and search settings) with the type forced, so the figures are those of a bundle of that size.
"""

from __future__ import annotations

import time
from typing import Any

import faiss
import numpy as np

from benchmarks.common import QUERY_PHRASES, ms_stats, time_calls

DIM = 128


def clustered_vectors(n: int, centres: int = 300, noise: float = 0.06, seed: int = 0, dim: int = DIM) -> np.ndarray:
    """``[n, dim]`` float32 L2-normalised vectors: random unit centres plus N(0, noise^2) per coordinate."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):  # chunked to keep the temporary float64 noise small
        m = min(step, n - start)
        x = c[rng.integers(0, centres, m)] + noise * rng.standard_normal((m, dim)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall_at_10(index: faiss.Index, exact: np.ndarray, queries: np.ndarray) -> float:
    """Mean |top-10 of ``index`` ∩ exact top-10| / 10 over ``[q, D]`` queries (``exact``: [q, 10] ids)."""
    _, got = index.search(queries, 10)
    return float(np.mean([len(set(g) & set(e)) / 10.0 for g, e in zip(got, exact, strict=True)]))


def _one_index(kind: str, vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray | None,
               text_s: np.ndarray, text_emb: np.ndarray, n_search: int, model: Any) -> dict[str, Any]:
    """Build one index, time single-query search, recall@10 and a cached repeated query; total = text + search."""
    from cxr_explorer.retrieval.bundle.reader import (
        apply_search_params,  # the engine's own settings, recorded by build_index
    )
    from cxr_explorer.retrieval.bundle.writer import build_index

    t0 = time.perf_counter()
    index, info = build_index(vectors, kind, use_gpu=False)
    build_s = time.perf_counter() - t0
    apply_search_params(index, info["params"])
    search_s = time_calls(lambda i: index.search(queries[i % len(queries)][None], 10), n_search, warmup=3)
    text_search_s = time_calls(lambda i: index.search(text_emb[i][None], 10), len(text_emb), warmup=1)
    row = {
        "index": kind, "params": info["params"], "build_s": round(build_s, 2),
        "memory_bytes": int(faiss.serialize_index(index).size),
        "search": ms_stats(search_s), "total": ms_stats(text_s + text_search_s),
        "recall_at_10": 1.0 if exact is None else round(recall_at_10(index, exact, queries), 4),
    }
    row["cached_total"] = ms_stats(cached_query_times(model, index, 50))
    return row


def text_encode_times(model: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cold text-encode seconds ``[n]`` of distinct phrases and their embeddings ``[n, D]``."""
    phrases = [QUERY_PHRASES[i % len(QUERY_PHRASES)] + ("" if i < len(QUERY_PHRASES) else f" {i}") for i in range(n)]
    model.embed_texts(["warm up the text tower"])
    secs, embs = np.empty(n), []
    for i, p in enumerate(phrases):
        t0 = time.perf_counter()
        embs.append(model.embed_texts([p])[0].numpy())
        secs[i] = time.perf_counter() - t0
    return secs, np.stack(embs).astype(np.float32)


def cached_query_times(model: Any, index: faiss.Index, n: int) -> np.ndarray:
    """Seconds of a repeated query: the engine's LRU text cache (a hit) + search, ``[n]``."""
    from cxr_explorer.retrieval.engine.query_cache import LRU

    cache: LRU[str, np.ndarray] = LRU(512)
    phrase = QUERY_PHRASES[0]

    def encode() -> np.ndarray:
        return model.embed_texts([phrase])[0].numpy().astype(np.float32)

    cache.get_or_compute(phrase, encode)  # first (cold) query fills the cache
    return time_calls(lambda i: index.search(cache.get_or_compute(phrase, encode)[None], 10), n, warmup=2)


def run_query(model: Any, sizes: list[int], kinds_for: dict[int, list[str]], n_text: int = 20,
              n_search: int = 200, n_recall: int = 200) -> dict[str, Any]:
    """Latency / recall / memory table over ``sizes`` x index types; text encode timed once with the model."""
    text_s, text_emb = text_encode_times(model, n_text)
    out: dict[str, Any] = {"text_encode": ms_stats(text_s), "sizes": {}, "k": 10,
                           "vectors": "synthetic clustered: 300 unit centres + N(0, 0.06^2) noise, L2-normalised",
                           "total_is": "per phrase: its cold text-encode time + its search time (paired sums)"}
    for n in sizes:
        vectors = clustered_vectors(n, seed=n)
        queries = clustered_vectors(n_recall, seed=n + 1)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(vectors)
        _, exact = flat.search(queries, 10)
        del flat
        rows = {}
        for kind in kinds_for[n]:
            rows[kind] = _one_index(kind, vectors, queries, None if kind == "flat" else exact, text_s, text_emb,
                                    n_search, model)
        out["sizes"][str(n)] = rows
    return out

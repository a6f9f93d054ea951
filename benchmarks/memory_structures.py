"""What each corpus-sized structure of a build costs, measured alone (``python -m benchmarks.memory_structures N``).

Each structure is built for ``N`` synthetic items the way :mod:`benchmarks.memory` builds them (one-line reports,
every one distinct) and measured with ``tracemalloc`` (Python objects and numpy buffers; numpy reports its
allocations to it): ``held_mib`` is what stays allocated while the structure is alive, ``peak_mib`` the most
allocated while making it (Arrow buffers, which tracemalloc does not see, are added from their own size). FAISS
allocates outside Python: its indexes are given by their own size (``ntotal`` x D x 4 bytes, the output file the
app loads) and the IVF training sample by its rows. Needs no model and no images.

    .venv/bin/python -m benchmarks.memory_structures 100000
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.memory import REPORTS

DIM = 128
MIB = 2**20


def write_csv(folder: Path, n: int) -> Path:
    """The memory benchmark's corpus CSV (image paths that need not exist, reports as there)."""
    csv = folder / "corpus.csv"
    rows = (f"images/s{i}.png,\"{REPORTS[i % len(REPORTS)]} Case {i}.\"" for i in range(n))
    csv.write_text("image_path,report\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return csv


def traced(make: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """(value of ``make(*args)``, MiB held after it, peak MiB while it ran), both over the allocations before it."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    value = make(*args)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return value, (held - base) / MIB, (peak - base) / MIB


def _texts(n: int) -> list[str]:
    """The distinct texts a build of ``n`` items caches: each report, and its distinct "Case i" sentence."""
    return [f"{REPORTS[i % len(REPORTS)]} Case {i}." for i in range(n)] + [f"Case {i}." for i in range(n)]


def _old_cache(texts: list[str]) -> tuple[dict[str, int], np.ndarray]:
    """The text cache before issue 12's memory work: normalised str -> row, vectors in a doubling float32 array."""
    from cxr_explorer.retrieval.inputs.text_embedding import normalise

    rows: dict[str, int] = {}
    vectors = np.zeros((1024, DIM), np.float32)
    for text in texts:
        key = normalise(text, True)
        if key not in rows:
            if len(rows) == len(vectors):
                vectors = np.concatenate([vectors, np.zeros_like(vectors)])
            vectors[len(rows)] = 1.0
            rows[key] = len(rows)
    return rows, vectors


def _new_cache(texts: list[str]) -> Any:
    """The text cache now (digests in sorted arrays, vectors in an anonymous file), seeded with ``texts``."""
    from cxr_explorer.index.text_cache import TextCache

    cache = TextCache(DIM, True)
    for start in range(0, len(texts), 4096):
        block = texts[start:start + 4096]
        cache.seed(block, np.ones((len(block), DIM), np.float32))
    return cache


def _metadata(n: int) -> Any:
    """The gathered chunks' metadata frames as finalisation holds them (base columns, ``sentences`` as lists)."""
    import pandas as pd

    texts = [f"{REPORTS[i % len(REPORTS)]} Case {i}." for i in range(n)]
    return pd.DataFrame({"id": [f"images/s{i}.png" for i in range(n)], "path": [f"images/s{i}.png" for i in range(n)],
                         "image_abspath": [f"/tmp/corpus/images/s{i}.png" for i in range(n)], "report": texts,
                         "sentences": [[*t.split(". ")] for t in texts]})


def faiss_figures(n: int, sentences_per_item: float = 2.5) -> dict[str, float]:
    """Sizes of the FAISS indexes of an ``n``-item build (the output) and the IVF training sample (overhead)."""
    from cxr_explorer.retrieval.bundle.writer import FLAT_MAX

    s = int(n * sentences_per_item)
    out = {"images_index_mib": n * DIM * 4 / MIB, "reports_index_mib": n * DIM * 4 / MIB,
           "sentences_index_mib": s * DIM * 4 / MIB}
    if s > FLAT_MAX:  # IVF: ids too, and a training sample of up to 256 x nlist rows
        nlist = max(1, min(int(4 * math.sqrt(s)), s // 39))
        out["sentences_index_mib"] += s * 8 / MIB
        out["sentences_ivf_training_sample_mib"] = min(s, 256 * nlist) * DIM * 4 / MIB
    return {k: round(v, 1) for k, v in out.items()}


def measure(n: int) -> dict[str, Any]:
    """Per structure: held and peak MiB for ``n`` items, and held MiB per 100k items."""
    from cxr_explorer.index import text_cache as sentences  # noqa: F401  (imported before tracing: its imports are not the cache)
    from cxr_explorer.index.corpus import read_corpus

    rows: dict[str, dict[str, float]] = {}

    def note(name: str, held: float, peak: float) -> None:
        rows[name] = {"held_mib": round(held, 1), "peak_mib": round(peak, 1),
                      "held_mib_per_100k_items": round(held * 100_000 / n, 1)}

    with tempfile.TemporaryDirectory() as tmp:
        csv = write_csv(Path(tmp), n)
        corpus, held, peak = traced(read_corpus, csv)
        arrow = corpus.items.nbytes / MIB  # Arrow's own allocator: not seen by tracemalloc
        note("corpus_listing_now (read_corpus: Arrow columns)", held + arrow, peak + arrow)
        listed, held, peak = traced(list, corpus.items)
        note("corpus_listing_before (an Item per row)", held, peak)
        del corpus, listed
    texts = _texts(n)
    old, held, peak = traced(_old_cache, texts)
    note("text_cache_before (str keys + [n,128] array)", held, peak)
    del old
    new, held, peak = traced(_new_cache, texts)
    note("text_cache_now (16-byte digests; vectors on disk)", held, peak)
    new.close()
    del new, texts
    meta, held, peak = traced(_metadata, n)
    note("metadata_frame (gathered at finalise)", held, peak)
    del meta
    return {"items": n, "structures": rows, "faiss": faiss_figures(n)}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    print(json.dumps(measure(int(args[0]) if args else 100_000)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

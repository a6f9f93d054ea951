"""The memory benchmark's own figures: per-structure costs and the largest output the job holds."""

from __future__ import annotations

from benchmarks.memory import largest_output_mib
from benchmarks.memory_structures import faiss_figures, measure


def test_structures_are_measured_and_the_cache_is_smaller_now() -> None:
    res = measure(3_000)
    rows = res["structures"]
    before = rows["text_cache_before (str keys + [n,128] array)"]["held_mib"]
    now = rows["text_cache_now (16-byte digests; vectors on disk)"]["held_mib"]
    assert res["items"] == 3_000 and all(r["held_mib"] >= 0 and r["peak_mib"] >= r["held_mib"] for r in rows.values())
    assert 0 < rows["corpus_listing_now (read_corpus: Arrow columns)"]["held_mib"] \
        < rows["corpus_listing_before (an Item per row)"]["held_mib"]
    assert now < before / 4  # 6,000 distinct texts: digests (in a dict below 65,536), vectors on disk


def test_faiss_figures_switch_to_ivf_above_the_flat_limit() -> None:
    small, big = faiss_figures(10_000), faiss_figures(100_000)
    assert "sentences_ivf_training_sample_mib" not in small and small["images_index_mib"] == 4.9
    assert big["sentences_ivf_training_sample_mib"] > 0 and big["sentences_index_mib"] > 250_000 * 512 / 2**20


def test_largest_output_is_the_biggest_index() -> None:
    manifest = {"dim": 128, "indexes": {"images": {"type": "flat", "count": 2**20},
                                        "sentences": {"type": "ivf", "count": 2**21}}}
    assert largest_output_mib(manifest) == {"output": "sentences index", "mib": 2.0 * (512 + 8)}
    assert largest_output_mib({}) == {"output": "none index", "mib": 0.0}

"""The memory benchmark's own figures: the largest output the job holds."""

from __future__ import annotations

from benchmarks.memory import largest_output_mib


def test_largest_output_is_the_biggest_index() -> None:
    manifest = {"dim": 128, "indexes": {"images": {"type": "flat", "count": 2**20},
                                        "sentences": {"type": "ivf", "count": 2**21}}}
    assert largest_output_mib(manifest) == {"output": "sentences index", "mib": 2.0 * (512 + 8)}
    assert largest_output_mib({}) == {"output": "none index", "mib": 0.0}

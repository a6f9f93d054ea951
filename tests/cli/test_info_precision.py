"""``cxr-explorer info`` says the bundle's precision and what it means for fidelity to hi-ml (1e-5 is fp32's)."""

from __future__ import annotations

from typing import Any

import pytest

from cxr_explorer.commands.info import summary_lines

MANIFEST: dict[str, Any] = {
    "model": {"name": "biovil", "revision": "v1.1", "image_md5": "x", "verified": True}, "format": "cxr-bundle",
    "format_version": 2, "created": "today", "count": 3, "counts": {"reports": 3, "sentences": 5},
    "indexes": {"images": {"type": "flat", "count": 3}}, "grid_shape": [15, 15], "dim": 128,
    "metric": "inner_product",
}


@pytest.mark.parametrize(("precision", "expected"), [
    ("fp32", ["fp32", "1e-5"]),
    ("bf16", ["bf16", "1e-5 match", "is for fp32", "6.6e-3", "9.3e-2", "9.2e-3"]),
    (None, ["not recorded", "1e-5", "9.3e-2"]),
])  # fmt: skip
def test_info_states_precision_and_its_fidelity(precision: str | None, expected: list[str]) -> None:
    build = {"images_per_s": 5.0, "precision": precision} if precision else {}
    line = next(x for x in summary_lines({**MANIFEST, "build": build}) if x.startswith("precision"))
    assert all(e in line for e in expected), line

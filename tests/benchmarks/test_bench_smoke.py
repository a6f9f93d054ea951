"""The CI smoke benchmark: ``python -m benchmarks.run --smoke`` runs and writes the contracted JSON keys (its speed is
recorded, not asserted: timings belong in the benchmark files, not in pass/fail)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow  # runs the whole smoke benchmark in a fresh process
def test_smoke_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| precision |" in proc.stdout and "| vectors | index |" in proc.stdout  # the markdown table
    res = json.loads(out.read_text())
    assert out.with_suffix(".md").is_file()
    m = res["machine"]
    assert m["cpu_model"] and _positive(m["cores"]) and m["gpu"]
    assert _positive(res["build_ratio"])
    assert _positive(res["grounding_speedup"])
    assert _positive(res["grounding_ours_p50_ms"]) and _positive(res["grounding_reference_p50_ms"])
    for p in res["build"]["precisions"].values():
        for key in ("encoder_images_per_s", "job_images_per_s", "image_stage_images_per_s", "reports_per_s"):
            assert _positive(p[key]), key
    assert res["query"]["sizes"], "no bundle size measured"
    for rows in res["query"]["sizes"].values():
        assert set(rows) == {"flat", "hnsw", "ivf"}
        for r in rows.values():
            assert _positive(r["search"]["p50_ms"]) and _positive(r["search"]["p95_ms"])
            assert _positive(r["total"]["p50_ms"]) and _positive(r["memory_bytes"])
            assert 0.0 < r["recall_at_10"] <= 1.0
        assert rows["flat"]["recall_at_10"] == 1.0
    app = res["app"]
    for key in ("search_beyond_encoder", "grounding_beyond_encoder"):
        assert 0 < app[key]["p50_ms"] < 60_000, app
    assert app["items"] > 0 and app["rss_mib_with_bundle"] > 0
    assert "available" in res["gpu"]
    assert _positive(res["wall_s"])

"""The compose benchmark section runs end to end in --smoke mode and writes its figures (exclusion exact)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


@pytest.mark.slow  # writes three bundles and times queries in a fresh process
def test_compose_section_smoke(tmp_path: Path) -> None:
    out = tmp_path / "compose.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.compose", "--smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    if "status" not in res["exclusion"]:  # ../shared present
        assert res["exclusion"]["exclusion_violations"] == 0 and len(res["feedback"]["recall"]) == 4
    assert res["latency_composed"]["ratio_p50"] > 0 and res["latency_collection_add"]["add"]["p50_ms"] > 0
    assert "collection add of 1,000 cases" in out.with_suffix(".md").read_text()

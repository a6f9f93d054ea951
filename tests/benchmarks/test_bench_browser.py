"""The browser benchmark's measuring itself (not its speed): on a small synthetic bundle every action is timed in
real Chromium without failures, each time runs from the user's input to an idle page after the run (so it is
positive and never longer than what the driver saw), a search's CPU is read per process kind with its floor, and both
kinds of concurrent sessions finish without errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.browser import CHROMIUM
from tests.helpers.paths import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM}")]


def test_browser_benchmark_measures_each_action(tmp_path: Path) -> None:
    from benchmarks.app import synthetic_bundle

    bundle = synthetic_bundle(tmp_path / "small", 60)
    # its own process: Playwright's sync API cannot start twice in one (the e2e tests hold one for the session)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.browser", str(bundle)], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "REPEATS": "2", "SESSIONS": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = (r for r in json.loads(proc.stdout).values() if isinstance(r, dict))
    actions = out["actions"]
    assert actions.pop("failed") == {}
    assert {"new_search", "ground_one_phrase", "map_open_pca", "search_to_map", "map_to_search",
            "search_map_search", "composed_search", "feedback_round", "collection_add_page"} <= set(actions)
    for name, r in actions.items():
        assert r["n"] == 2 and r["p50_ms"] > 0, name
        if name != "search_map_search":  # the summed round trip has no driver span of its own
            assert r["p50_ms"] <= r["driver_p50_ms"] + 0.1, (name, r)  # input inside the driver's span; 0.1: rounding
    assert out["concurrent"]["errors"] == 0 and out["concurrent"]["n"] == 4
    assert out["concurrent_protocol"]["errors"] == 0 and out["concurrent_protocol"]["n"] == 4
    cost = out["search_cost"]
    assert cost["browser_cpu_ms"] > 0 and cost["server_cpu_ms"] > 0, cost
    assert cost["floor_ms"] >= cost["sessions"] * cost["browser_cpu_ms"] / cost["cores"] - 0.1, cost

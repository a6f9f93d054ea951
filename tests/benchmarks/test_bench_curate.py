"""The curate benchmark section's plumbing on a small synthetic size (its figures are produced by benchmarks.run)."""

from __future__ import annotations

from benchmarks.curate import curate_lines, run_scale


def test_scale_section_reports_ratios_and_planted_scores() -> None:
    res = run_scale([1500], rounds=1)
    row = res["1500"]
    assert row["knn_pass_s"] > 0 and row["k"] == 10
    assert set(row["checks"]) == {"mismatch", "labels", "outliers", "leakage_split"}
    for c in row["checks"].values():
        assert c["time_ratio"] > 0 and c["kind"] == "synthetic" and c["planted"] in (15, 30)  # swaps: both sides
        assert 0.0 <= c["precision_at_k"] <= 1.0 and 0.0 <= c["flagged_recall"] <= 1.0
    assert row["checks"]["leakage_split"]["precision_at_k"] == 1.0
    table = "\n".join(curate_lines({"scale": res, "covid": "skipped"}))
    assert "| 1,500 | mismatch |" in table and "exact kNN pass" in table

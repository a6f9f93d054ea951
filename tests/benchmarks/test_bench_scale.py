"""The scale benchmark sections run end to end in --smoke mode and write their figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


@pytest.mark.slow  # runs six benchmark sections in a fresh process
def test_scale_sections_smoke(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke", "--only", "sentences", "query_encode",
                           "precision", "growth", "memory", "build_reports", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    qe = res["query_encode"]["threads"]
    assert set(qe) == {"1", "2"} and all(r["fp32"]["ratio_to_fp32"] == 1.0 for r in qe.values())
    shipped = res["query_encode"]["query_path"]["bf16_variant"]
    assert shipped in ("bf16", "bf16-fused-gelu")  # the packed lean forward where the CPU has native bf16
    assert all(r[k]["p50_ms"] > 0 for r in qe.values() for k in ("fp32", shipped, "tokenize", "query-path"))
    assert res["query_encode"]["cosine_to_fp32"][shipped] > 0.99
    assert res["precision"]["shipped_query_variant"]["name"] == shipped
    for name, row in res["sentences"].items():
        if isinstance(row, dict) and "texts_asked" in row:
            assert row["calls_per_build_cache"] <= row["calls_per_chunk_dedupe"] <= row["texts_asked"], name
    growth = res["growth"]["indexes"]["2000"]
    assert growth["flat"]["recall_at_10"] == 1.0 and set(growth) == {"flat", "ivf", "hnsw"}
    assert res["growth"]["patch_store"]["max_map_diff"] < 0.05
    sizes = res["memory"]["sizes"]
    assert [int(n) for n in sizes] == [40, 120] and all(r["items"] == int(n) for n, r in sizes.items())
    assert "## query_encode" in out.with_suffix(".md").read_text()
    reports = res["build_reports"]
    if "status" in reports:  # ../shared absent
        assert reports["status"].startswith("skipped: ")
    else:
        row = reports["precisions"]["fp32"]
        assert reports["items"] == 4 and row["job"]["items"] == 4 and row["build_ratio"] > 0
        assert row["text_encoder"]["encoded"] <= row["text_encoder"]["texts"]


def test_radiology_manifest_pairs_report_rows_with_cycled_images(tmp_path: Path) -> None:
    import pandas as pd

    from benchmarks.build import paired_manifest

    iu = tmp_path / "iu.csv"
    pd.DataFrame({"findings": ["Clear lungs.", None, "Small effusion.", "No pneumothorax.", "Stable."],
                  "impression": ["Normal.", None, None, "Normal.", None]}).to_csv(iu, index=False)
    images = [tmp_path / f"{c}.png" for c in "abc"]
    table = pd.read_csv(paired_manifest(images, iu, tmp_path / "m.csv", items=10))
    assert table["id"].tolist() == ["r00000", "r00001", "r00002", "r00003"]  # the row with no text is left out
    assert table["image"].tolist() == [str(images[i]) for i in (0, 1, 2, 0)]
    assert table["findings"].tolist() == ["Clear lungs.", "Small effusion.", "No pneumothorax.", "Stable."]
    assert len(pd.read_csv(paired_manifest(images, iu, tmp_path / "d.csv"))) == 3  # default: one row per image

"""Build rate with and without priors (BioViL-T): the same covid_chestxray subset, in the same run.

``without``: ``run_build`` with no priors (single-image embeddings). ``with``: the same build plus the temporal stage
(``--priors covid_chestxray``): every image whose patient has an earlier dated study is encoded again together with
that prior (the temporal forward runs two images through the ResNet, then the ViT pooler). Rates are corpus items
per second of wall time; ``priors_cost_ratio`` = (with wall) / (without wall).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd


def covid_subset(shared: Path, n: int, tmp: Path) -> Path:
    """A CSV of the first ``n`` images of patients with 2+ dated studies (absolute image paths)."""
    table = pd.read_csv(shared / "reports.csv", dtype=str, keep_default_na=False)
    dated = table[table["study_id"].str.contains(r"_d\d+$", regex=True)]
    multi = dated.groupby("patient_id")["study_id"].transform("nunique") >= 2
    subset = dated[multi].head(n).copy()
    subset["image_file"] = [str(shared / f) for f in subset["image_file"]]
    out = tmp / "priors_corpus" / "reports.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    subset.to_csv(out, index=False)
    return out


def run_priors(model: Any, shared: Path, n: int, tmp: Path) -> dict[str, Any]:
    """Wall time and items/s of the build without and with priors on ``n`` covid images (BioViL-T-shaped model)."""
    from cxr_explorer.index.corpus import CorpusOptions
    from cxr_explorer.index.priors import PriorOptions
    from cxr_explorer.index.runner import BuildConfig, run_build

    if not (shared / "reports.csv").is_file():
        return {"status": "skipped", "note": f"{shared} is absent"}
    csv = covid_subset(shared, n, tmp)
    opts = CorpusOptions(preset="covid_chestxray")
    out: dict[str, Any] = {"model": model.spec.name, "items": n}
    for name, priors in (("without", None), ("with", PriorOptions(preset="covid_chestxray"))):
        cfg = BuildConfig(corpus=csv, out=tmp / f"priors_{name}", model=model.spec.name, corpus_options=opts,
                          device="cpu", workers=1, progress="none", priors=priors)
        t0 = time.perf_counter()
        summary = run_build(cfg, model=model)
        wall = time.perf_counter() - t0
        out[name] = {"wall_s": round(wall, 2), "items_per_s": round(summary.count / wall, 3)}
        if summary.temporal is not None:
            out[name]["pairs"] = summary.temporal.embedded_now
            out[name]["pairs_per_s"] = round(summary.temporal.pairs_per_s or 0.0, 3)
    out["priors_cost_ratio"] = round(out["with"]["wall_s"] / out["without"]["wall_s"], 3)
    return out

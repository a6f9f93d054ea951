"""The ``curate`` section: cost of each curation check as a ratio to one exact kNN pass over the same vectors, and
planted-fault precision@k / recall per check.

Scale: synthetic unit vectors (``tests.helpers.curate_faults.synthetic_faults``) at each size; the baseline is one
exact FAISS ``IndexFlatIP`` search of every image vector for its k + 1 nearest (the O(N k) pass every vector check
is built from). Time is the median of ``rounds`` runs; memory is the peak RSS increase during one call, sampled
every 2 ms. Planted faults: on the synthetic vectors (``kind: synthetic``) and on a covid_chestxray corpus with
planted faults built with the benchmark's model (``kind: covid, seeded model``: with seeded weights the vector
checks' figures are meaningless, the pixel and exact-duplicate figures are real; real weights give real figures
from the same code).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import current_rss_mib
from cxr_explorer.retrieval.curate.base import CheckResult, CurateData, knn
from cxr_explorer.retrieval.curate.evaluate import score_ranking
from cxr_explorer.retrieval.curate.registry import CheckInputs, checks
from tests.helpers.curate_faults import Planted, plant_images, synthetic_faults

K = 10
INPUTS = CheckInputs(label_col="labels", split_col="split")
"""The planted corpora's label and split columns."""


class PeakRss:
    """Samples this process's RSS every 2 ms on a thread while active: ``peak`` - ``base`` is the increase (MiB)."""

    def __init__(self) -> None:
        self.base = self.peak = current_rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_mib())
            time.sleep(0.002)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mib())


def measure(fn: Callable[[], Any], rounds: int) -> tuple[float, float, Any]:
    """(median seconds, peak RSS increase MiB over the rounds, last result) of ``fn``."""
    times, peaks, result = [], [], None
    for _ in range(rounds):
        with PeakRss() as rss:
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        peaks.append(rss.peak - rss.base)
    return float(np.median(times)), float(max(peaks)), result


def _score(table: pd.DataFrame, truth: set[str], exclude: set[str]) -> dict[str, Any]:
    """Precision@k / recall of a table against ``truth``, ignoring cases planted with another fault."""
    t = table[~table["id"].isin(exclude - truth)]
    s = score_ranking(t["id"].astype(str).tolist(), t.loc[t["flagged"], "id"].astype(str).tolist(), truth)
    return {"planted": s.planted, "precision_at_k": round(s.precision_at_k, 3),
            "recall_at_2k": round(s.recall_at_2k, 3), "flagged": s.flagged,
            "flagged_recall": round(s.flagged_recall, 3), "flagged_precision": round(s.flagged_precision, 3)}


def _runs(data: CurateData, truth: dict[str, set[str]]) -> dict[str, tuple[Callable[[], CheckResult], set[str]]]:
    """Check name -> (a run of the registered check with its default settings, its planted ids), in registry
    order, for the checks ``truth`` has planted faults for."""
    return {spec.name: (partial(spec.run_with, data, None, INPUTS), truth[spec.name])
            for spec in checks() if spec.name in truth}


def _checks(p: Planted) -> dict[str, tuple[Callable[[], CheckResult], set[str]]]:
    return _runs(p.data, {"mismatch": p.swapped, "labels": p.flipped, "outliers": p.outliers,
                          "leakage_split": p.duplicates})


def run_scale(sizes: list[int], rounds: int) -> dict[str, Any]:
    """Per size: baseline kNN time/memory, each check's time/memory and ratios, planted-fault scores."""
    out: dict[str, Any] = {}
    for n in sizes:
        p = synthetic_faults(n, rate=0.01, seed=0)
        every = p.swapped | p.flipped | p.outliers | p.duplicates
        r = max(1, rounds if n <= 20_000 else 1)
        base_s, base_mib, _ = measure(lambda: knn(p.data.image_index, p.data.image_vectors, K + 1), r)  # noqa: B023
        row: dict[str, Any] = {"vectors": n, "k": K, "rounds": r, "knn_pass_s": round(base_s, 3),
                               "knn_pass_peak_mib": round(base_mib, 1), "checks": {}}
        for name, (fn, truth) in _checks(p).items():
            secs, mib, result = measure(fn, r)
            row["checks"][name] = {"s": round(secs, 3), "time_ratio": round(secs / base_s, 2),
                                   "peak_mib": round(mib, 1),
                                   "memory_ratio": round(mib / base_mib, 2) if base_mib > 1 else None,
                                   "kind": "synthetic", **_score(result.table, truth, every)}
        out[str(n)] = row
    return out


def covid_planted(model: Any, corpus_dir: Path, tmp: Path, items: int, seed: int = 0) -> dict[str, Any]:
    """Plant faults in a copy of ``items`` covid_chestxray rows, build with ``model``, run the checks, score them.

    Faults: reports swapped between 5 % of pairs, labels flipped on 5 %, five image faults (rotated, upside-down,
    inverted, blank, noise) added as new rows, 5 % exact duplicates added under a test split.
    """
    from cxr_explorer.index.corpus import CorpusOptions
    from cxr_explorer.index.runner import BuildConfig, run_build
    from cxr_explorer.retrieval.bundle.reader import Bundle
    from cxr_explorer.retrieval.curate import data_from_bundle

    rng = np.random.default_rng(seed)
    meta = pd.read_csv(corpus_dir / "reports.csv", dtype=str, keep_default_na=False)
    meta = meta[(meta["view"] != "LAT") & (meta["findings"].str.len() > 20)].head(items).reset_index(drop=True)
    meta = meta[["image_id", "image_file", "findings", "labels", "view"]].copy()
    meta["image_file"] = [str(corpus_dir / f) for f in meta["image_file"]]
    meta["split"] = np.where(rng.random(len(meta)) < 0.8, "train", "test")
    m = max(2, len(meta) // 20)
    order = rng.permutation(len(meta))
    a, b, flip, dup = order[:m], order[m:2 * m], order[2 * m:3 * m], order[3 * m:4 * m]
    meta.loc[a, "findings"], meta.loc[b, "findings"] = meta.loc[b, "findings"].to_numpy(), \
        meta.loc[a, "findings"].to_numpy()
    labels = sorted({lab for cell in meta["labels"] for lab in cell.split(";") if lab})
    for i in flip:
        meta.loc[i, "labels"] = str(rng.choice([x for x in labels if x not in meta.loc[i, "labels"].split(";")]))
    dups = meta.loc[dup].copy()
    dups["image_id"] = [f"dup-{x}" for x in dups["image_id"]]
    dups["split"] = "test"
    meta.loc[dup, "split"] = "train"
    kinds = plant_images([Path(f) for f in meta["image_file"].head(5)], tmp / "planted", seed)
    planted_rows = pd.DataFrame({"image_id": [f"planted-{k}" for k in kinds.values()],
                                 "image_file": [str(tmp / "planted" / f) for f in kinds],
                                 "findings": ["No acute cardiopulmonary process."] * len(kinds), "labels": "",
                                 "view": "PA", "split": "train"})
    corpus = pd.concat([meta, dups, planted_rows], ignore_index=True)
    csv = tmp / "planted.csv"
    corpus.to_csv(csv, index=False)
    out = tmp / "covid-planted"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    cfg = BuildConfig(corpus=csv, out=out, model=model.spec.name,
                      corpus_options=CorpusOptions(image_col="image_file", text_cols=("findings",),
                                                   id_col="image_id", preset="none"),
                      device="cpu", progress="none", command="benchmarks.run --only curate")
    run_build(cfg, model=model)
    build_s = time.perf_counter() - t0
    data: CurateData = data_from_bundle(Bundle.open(out))
    ids = meta["image_id"].to_numpy()
    truth = {"mismatch": set(ids[np.r_[a, b]]), "labels": set(ids[flip]),
             "leakage_split": {f"dup-{x}" for x in ids[dup]},
             "pixels": {f"planted-{k}" for k in kinds.values()}, "outliers": {f"planted-{k}" for k in kinds.values()}}
    every = set().union(*truth.values())
    kind = "covid, seeded model" if not model.identity.is_real else "covid, real weights"
    scores = {name: {"kind": kind if name != "pixels" else "covid, model-free", **_score(run().table, fault, every)}
              for name, (run, fault) in _runs(data, truth).items()}
    return {"items": int(data.count), "build_s": round(build_s, 1), "checks": scores,
            "note": "vector checks use the benchmark's model; with seeded weights their figures are meaningless "
                    "except exact duplicates (identical images give identical vectors); pixel checks need no model"}


def curate_lines(res: dict[str, Any]) -> list[str]:
    """The section as markdown: cost ratios per size, then planted-fault scores (synthetic and covid)."""
    lines = ["| vectors | check | s | time / exact kNN pass | peak MiB | memory / kNN pass | kind | planted | "
             "precision@k | recall@2k | flagged | flagged recall |", "|---" * 12 + "|"]
    for n, row in res.get("scale", {}).items():
        lines.append(f"| {int(n):,} | exact kNN pass (k={row['k'] + 1}) | {row['knn_pass_s']} | 1 | "
                     f"{row['knn_pass_peak_mib']} | 1 | | | | | | |")
        for name, c in row["checks"].items():
            lines.append(f"| {int(n):,} | {name} | {c['s']} | {c['time_ratio']} | {c['peak_mib']} | "
                         f"{c['memory_ratio']} | {c['kind']} | {c['planted']} | {c['precision_at_k']} | "
                         f"{c['recall_at_2k']} | {c['flagged']} | {c['flagged_recall']} |")
    covid = res.get("covid")
    if isinstance(covid, dict) and "checks" in covid:
        lines += ["", f"covid_chestxray with planted faults ({covid['items']} items, built in {covid['build_s']} s): "
                  f"{covid['note']}", "", "| check | kind | planted | precision@k | recall@2k | flagged | "
                  "flagged recall |", "|---|---|---|---|---|---|---|"]
        for name, c in covid["checks"].items():
            lines.append(f"| {name} | {c['kind']} | {c['planted']} | {c['precision_at_k']} | {c['recall_at_2k']} | "
                         f"{c['flagged']} | {c['flagged_recall']} |")
    elif covid:
        lines += ["", f"covid: {covid}"]
    lines += ["", "Time: median of the rounds; memory: peak RSS increase during a call. Scores ignore cases planted "
              "with another fault. " + str(res.get("machine_note", ""))]
    return lines


def run_curate(model: Any, sizes: list[int], rounds: int, covid_dir: Path, covid_items: int, tmp: Path
               ) -> dict[str, Any]:
    """The whole section: scale at ``sizes``, then the covid planted-fault run (skipped when absent or 0 items)."""
    res: dict[str, Any] = {"scale": run_scale(sizes, rounds),
                           "machine_note": "Absolute times: see the load average in the results header."}
    if covid_items and (covid_dir / "reports.csv").is_file():
        res["covid"] = covid_planted(model, covid_dir, tmp, covid_items)
    else:
        res["covid"] = "skipped (no covid_chestxray corpus or 0 items in this mode)"
    return res

"""Leakage signals on planted copies: precision and recall of each signal (image vectors, perceptual hash, report
text) of ``leakage_split`` on covid_chestxray images with copies planted in the test split.

Copies of train images, each with its source's report: re-encoded (JPEG quality 70), resized to 60 %, cropped by 2 px
and by 4 px on every side, 15 % brighter. A pair counts as found by a signal when its ``found_by`` names it; truth is
the planted (copy, source) pairs, so a real duplicate of the corpus itself counts against precision.

    .venv/bin/python -m benchmarks.leakage --items 100 --models tiny-random biovil
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

from benchmarks.common import machine, seeded_model
from tests.helpers.paths import COVID_CORPUS


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "reencoded": lambda im: _jpeg(im, 70),
    "resized": lambda im: im.resize((int(im.width * 0.6), int(im.height * 0.6)), Image.Resampling.BILINEAR),
    "cropped_2px": lambda im: im.crop((2, 2, im.width - 2, im.height - 2)),
    "cropped_4px": lambda im: im.crop((4, 4, im.width - 4, im.height - 4)),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.15),
}


def planted_corpus(items: int, per_kind: int, tmp: Path, seed: int = 0) -> tuple[Path, set[tuple[str, str]]]:
    """A CSV of ``items`` covid rows (train) plus ``per_kind`` copies of each kind (test); the planted pairs."""
    rng = np.random.default_rng(seed)
    meta = pd.read_csv(COVID_CORPUS / "reports.csv", dtype=str, keep_default_na=False)
    meta = meta[(meta["view"] != "LAT") & (meta["findings"].str.len() > 20)].head(items).reset_index(drop=True)
    rows = [{"image_id": r.image_id, "image_file": str(COVID_CORPUS / r.image_file), "findings": r.findings,
             "split": "train"} for r in meta.itertuples()]
    sources = rng.choice(len(meta), per_kind * len(COPIES), replace=False)
    truth = set()
    (tmp / "copies").mkdir(parents=True, exist_ok=True)
    for n, (kind, make) in enumerate(COPIES.items()):
        for i in sources[n * per_kind:(n + 1) * per_kind]:
            src = meta.iloc[int(i)]
            path = tmp / "copies" / f"{kind}-{src.image_id}.png"
            make(Image.open(COVID_CORPUS / src.image_file).convert("L")).save(path)
            rows.append({"image_id": f"{kind}-{src.image_id}", "image_file": str(path), "findings": src.findings,
                         "split": "test"})
            truth.add((f"{kind}-{src.image_id}", str(src.image_id)))
    csv = tmp / "planted.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv, truth


def score(table: pd.DataFrame, truth: set[tuple[str, str]]) -> dict[str, Any]:
    """Per signal (and any): pairs listed, planted pairs found, precision, recall."""
    pairs = [frozenset((str(a), str(b))) for a, b in zip(table["id"], table["other_id"], strict=True)]
    planted = {frozenset(p) for p in truth}
    out: dict[str, Any] = {}
    for signal in ("vector", "hash", "report", "any"):
        mask = np.ones(len(table), bool) if signal == "any" else table["found_by"].str.contains(signal).to_numpy()
        found = {p for p, m in zip(pairs, mask, strict=True) if m}
        hit = len(found & planted)
        out[signal] = {"listed": len(found), "found": hit, "precision": round(hit / len(found), 3) if found else 0.0,
                       "recall": round(hit / len(planted), 3)}
    by_hash = {p for p, m in zip(pairs, table["found_by"].str.contains("hash").to_numpy(), strict=True) if m}
    kinds: dict[str, list[int]] = {}
    for copy, source in sorted(truth):
        counts = kinds.setdefault(copy.split("-", 1)[0], [0, 0])
        counts[0] += frozenset((copy, source)) in by_hash
        counts[1] += 1
    out["hash_found_by_kind"] = {k: f"{a}/{n}" for k, (a, n) in kinds.items()}
    return out


def run(model_name: str, csv: Path, truth: set[tuple[str, str]], tmp: Path) -> dict[str, Any]:
    """Build the planted corpus with ``model_name`` (``biovil``: the real-size architecture, seeded weights) and
    score ``leakage_split``."""
    from cxr_explorer.index.corpus import CorpusOptions
    from cxr_explorer.index.runner import BuildConfig, run_build
    from cxr_explorer.retrieval.bundle.reader import Bundle
    from cxr_explorer.retrieval.curate.base import data_from_bundle
    from cxr_explorer.retrieval.curate.leakage import check_split_leakage
    from cxr_explorer.retrieval.models import load_model

    model = load_model("tiny-random", device="cpu") if model_name == "tiny-random" else seeded_model(model_name)
    out = tmp / f"bundle-{model_name}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run_build(BuildConfig(corpus=csv, out=out, model=model.spec.name, device="cpu", progress="none",
                          corpus_options=CorpusOptions(image_col="image_file", text_cols=("findings",),
                                                       id_col="image_id", preset="none")), model=model)
    build_s = time.perf_counter() - t0
    with Bundle.open(out) as b:
        data = data_from_bundle(b)
    t0 = time.perf_counter()
    result = check_split_leakage(data, "split")
    return {"model": model_name if model_name == "tiny-random" else f"{model_name} (seeded weights)",
            "items": data.count, "planted": len(truth), "build_s": round(build_s, 1),
            "check_s": round(time.perf_counter() - t0, 2), "scores": score(result.table, truth)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--per-kind", type=int, default=8)
    parser.add_argument("--models", nargs="+", default=["tiny-random", "biovil"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/leakage.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv, truth = planted_corpus(args.items, args.per_kind, Path(tmp))
        results = [run(m, csv, truth, Path(tmp)) for m in args.models]
    args.out.write_text(json.dumps({"machine": machine(), "command": "python -m benchmarks.leakage "
                                    f"--items {args.items} --per-kind {args.per_kind} --models {' '.join(args.models)}",
                                    "results": results}, indent=1) + "\n")
    for r in results:
        print(f"{r['model']}: {r['items']} items, {r['planted']} planted copies")
        for signal in ("vector", "hash", "report", "any"):
            s = r["scores"][signal]
            print(f"  {signal:7s} listed {s['listed']:4d} found {s['found']:3d} precision {s['precision']:.3f} "
                  f"recall {s['recall']:.3f}")
        print("  found by hash per kind:", r["scores"]["hash_found_by_kind"])


if __name__ == "__main__":
    main()

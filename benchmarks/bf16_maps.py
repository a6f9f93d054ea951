"""bf16 against fp32 on the heatmap a user sees: the same seeded real-size model (benchmarks.common.seeded_model) run
in fp32 and in bf16 autocast on the reference inputs (tests/reference/images) and radiology phrases.

Per (image, phrase): the max |bf16 - fp32| of the displayed map (the smoothed similarity at the image's size, in
cosine units, and after fitting each map's own [min, max] to [0, 1], as a per-map colour range shows it), and the
top-k agreement of the smoothed patch grid (share of the k highest patches that both precisions rank top k; argmax
equal). Seeded weights: magnitudes comparable to real weights' numerics, not to their clinical meaning.

    .venv/bin/python -m benchmarks.bf16_maps --model biovil --k 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import QUERY_PHRASES, machine, seeded_model
from cxr_explorer.retrieval.grounding.maps import patch_similarity, similarity_map, smooth_grid
from cxr_explorer.retrieval.inputs.images import load_image
from tests.helpers.paths import REPO

IMAGES = ("small_373x361.jpg", "large_12bit_2048x2496.png", "odd_margin_652x500.jpg")


def _fitted(m: np.ndarray) -> np.ndarray:
    lo, hi = np.nanmin(m), np.nanmax(m)
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def compare(model_name: str, k: int, phrases: int) -> dict:
    models = {p: seeded_model(model_name, precision=p) for p in ("fp32", "bf16")}
    spec = models["fp32"].spec
    rows = []
    for name in IMAGES:
        loaded = load_image(REPO / "tests" / "reference" / "images" / name)
        x = models["fp32"].preprocess(loaded.image).unsqueeze(0)
        out = {}
        for p, m in models.items():
            patches = m.embed_patches(x)[0].float()
            text = m.embed_texts(list(QUERY_PHRASES[:phrases]))
            out[p] = (patches, text)
        for j, phrase in enumerate(QUERY_PHRASES[:phrases]):
            maps, grids = {}, {}
            for p, (patches, text) in out.items():
                maps[p] = similarity_map(patches, text[j], loaded.width, loaded.height, spec.resize, spec.crop)
                grids[p] = smooth_grid(patch_similarity(patches, text[j]).numpy()).ravel()
            top = [set(np.argsort(-grids[p])[:k]) for p in ("fp32", "bf16")]
            rows.append({"image": name, "phrase": phrase,
                         "max_abs_diff": float(np.nanmax(np.abs(maps["bf16"] - maps["fp32"]))),
                         "map_range": float(np.nanmax(maps["fp32"]) - np.nanmin(maps["fp32"])),
                         "max_abs_diff_fitted": float(np.nanmax(np.abs(_fitted(maps["bf16"]) - _fitted(maps["fp32"])))),
                         "topk_agreement": len(top[0] & top[1]) / k,
                         "argmax_equal": bool(np.argmax(grids["bf16"]) == np.argmax(grids["fp32"]))})
    col = {c: np.array([r[c] for r in rows], dtype=float) for c in rows[0] if c not in ("image", "phrase")}
    return {"model": f"{model_name} (seeded weights)", "k": k, "maps": len(rows),
            "median": {c: float(np.median(v)) for c, v in col.items()},
            "worst": {"max_abs_diff": float(col["max_abs_diff"].max()),
                      "max_abs_diff_fitted": float(col["max_abs_diff_fitted"].max()),
                      "topk_agreement": float(col["topk_agreement"].min()),
                      "argmax_equal_share": float(col["argmax_equal"].mean())},
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="biovil")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--phrases", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bf16_maps.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    res = compare(args.model, args.k, args.phrases)
    res["machine"] = machine()
    res["command"] = f"python -m benchmarks.bf16_maps --model {args.model} --k {args.k} --phrases {args.phrases}"
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: res[k] for k in ("model", "k", "maps", "median", "worst")}, indent=1))


if __name__ == "__main__":
    main()

"""Is bf16 safe? Cosine to fp32 per embedding kind and search agreement.

One model, the same weights in both: fp32 is the reference; ``bf16`` is the model switched to bf16 (what a
``--precision auto`` build computes on a native-bf16 CPU, and the shipped bf16 query path). On covid_chestxray (first
``images`` images, first ``reports`` reports and their sentences):

* cosine of each bf16 embedding to its fp32 one: image global, image patch, report, sentence, query (min / median);
* search agreement, per corpus kind (images, reports, sentences): each query phrase ranks the corpus with fp32
  queries against fp32 vectors (reference) and with bf16 queries against bf16 vectors (a bf16 bundle), or against
  the fp32 vectors (``shipped_query_variant``: bf16 queries, one at a time, on an fp32 bundle); recall@10 =
  |top-10 ∩ reference top-10| / 10 and Spearman rank correlation of the scores over the whole corpus, means over
  queries.

    .venv/bin/python -m benchmarks.precision [--weights-dir DIR] [--images 64] [--reports 200]

Without ``--weights-dir`` the model is the seeded real-size BioViL (benchmarks.common.SEEDED_NOTE); with it, the
real released weights.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from benchmarks.common import QUERY_PHRASES, seeded_model
from cxr_explorer.retrieval.inputs.text import join_sections, split_sentences

COVID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "covid_chestxray"
Encoder = Callable[[list[str]], np.ndarray]


def covid_texts(n_reports: int, fits: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(first ``n_reports`` non-empty cleaned reports that ``fits`` the encoder, their distinct sentences)."""
    df = pd.read_csv(COVID / "reports.csv", dtype=str, keep_default_na=False)
    reports = [r for r in (join_sections(f, i) for f, i in zip(df["findings"], df["impression"], strict=True))
               if r and fits(r)][:n_reports]
    sentences = list(dict.fromkeys(s for r in reports for s in split_sentences(r) if fits(s)))
    return reports, sentences


def covid_images(model: Any, n: int) -> torch.Tensor:
    """``[n, 3, crop, crop]`` preprocessed covid_chestxray images (sorted by name)."""
    from cxr_explorer.retrieval.inputs.images import load_image

    files = sorted(p for p in (COVID / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
    return torch.stack([model.preprocess(load_image(p).image) for p in files])


def _cos(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    c = np.sum(a * b, axis=-1).ravel()
    return {"min": round(float(c.min()), 5), "median": round(float(np.median(c)), 5), "n": int(c.size)}


def agreement(q_ref: np.ndarray, c_ref: np.ndarray, q_var: np.ndarray, c_var: np.ndarray) -> dict[str, float]:
    """recall@10 and Spearman of the variant's ranking [Q, N] against the reference's, means over the Q queries."""
    s_ref, s_var = q_ref @ c_ref.T, q_var @ c_var.T
    k = min(10, s_ref.shape[1])
    top_ref, top_var = np.argsort(-s_ref, axis=1)[:, :k], np.argsort(-s_var, axis=1)[:, :k]
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_var, strict=True)])
    rho = np.mean([spearmanr(a, b).statistic for a, b in zip(s_ref, s_var, strict=True)])
    ranked = -np.sort(-s_ref, axis=1)
    gap = ranked[:, k - 1] - ranked[:, k] if ranked.shape[1] > k else np.zeros(1)
    return {"recall_at_10": round(float(recall), 4), "spearman": round(float(rho), 4), "corpus": int(s_ref.shape[1]),
            # how close the 10th and 11th results are, and how far the variant moves a score: a recall below 1 with
            # a score error of the order of the gap means near-ties, not a precision problem
            "gap_10th_11th_median": float(f"{np.median(gap):.2g}"),
            "score_error_median": float(f"{np.median(np.abs(s_var - s_ref)):.2g}")}


def _texts(model: Any, texts: list[str], batch: int = 32) -> np.ndarray:
    return np.concatenate([model.embed_texts(texts[i:i + batch]).numpy() for i in range(0, len(texts), batch)])


def run_precision(model: Any, n_images: int, n_reports: int) -> dict[str, Any]:
    """The cosine and agreement tables for ``model`` (fp32 weights; switched to bf16 for the variant)."""
    if not COVID.is_dir():
        return {"status": f"skipped: {COVID} absent"}
    tok = model.tokenizer
    reports, sentences = covid_texts(n_reports, lambda t: 0 < tok.count_tokens(t) <= tok.max_length
                                     and bool(t.rstrip("!?.").strip()))
    queries = list(QUERY_PHRASES)
    images = covid_images(model, n_images)
    out: dict[str, Any] = {"images": len(images), "reports": len(reports), "sentences": len(sentences),
                           "queries": len(queries)}
    vec: dict[str, dict[str, np.ndarray]] = {}
    for precision in ("fp32", "bf16"):
        model.precision = precision
        enc = model.encode_images(images)
        vec[precision] = {"image": enc.global_emb.numpy(), "patch": enc.patches.numpy(),
                          "report": _texts(model, reports), "sentence": _texts(model, sentences),
                          "query": _texts(model, queries)}
    model.precision = "fp32"
    f, b = vec["fp32"], vec["bf16"]
    out["cosine_bf16_vs_fp32"] = {k: _cos(f[k], b[k]) for k in f}
    kinds = ("image", "report", "sentence")
    out["search_bf16_vs_fp32"] = {k: agreement(f["query"], f[k], b["query"], b[k]) for k in kinds}
    out["shipped_query_variant"] = shipped_queries(model, queries, f, kinds)
    return out


def shipped_queries(model: Any, queries: list[str], f: dict[str, np.ndarray], kinds: tuple[str, ...]
                    ) -> dict[str, Any]:
    """The shipped bf16 query path (``VLModel.text_path``), one query at a time, against the fp32 corpus vectors
    ``f``: cosine to the fp32 query, recall@10 / Spearman per kind, ``usable`` = recall@10 >= 0.99 for every kind."""
    model.precision = "bf16"
    try:
        name = model.text_path
        q = np.concatenate([model.embed_texts([text]).numpy() for text in queries])
    finally:
        model.precision = "fp32"
    search = {k: agreement(f["query"], f[k], q, f[k]) for k in kinds}
    return {"name": name, "cosine_query": _cos(f["query"], q), "search": search,
            "usable": all(v["recall_at_10"] >= 0.99 for v in search.values())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights-dir", type=Path, default=None, help="real BioViL weights (default: seeded model)")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--reports", type=int, default=200)
    args = p.parse_args(argv)
    if args.weights_dir is not None:
        from cxr_explorer.retrieval.models import load_model

        model = load_model("biovil", args.weights_dir, "cpu", "fp32")
    else:
        model = seeded_model("biovil")
    print(json.dumps(run_precision(model, args.images, args.reports), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue-2 figures: real-size encoder speed (fp32 vs bf16 autocast, batch 1 and 8, 480 px), text latency for a
16-token query, and fp32-vs-bf16 agreement of embeddings. Seeded real-size weights (timing does not depend on the
values); variants are interleaved round by round so a noisy neighbour hits them alike. Medians are reported.

    .venv/bin/python -m benchmarks.encoders [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from cxr_explorer.retrieval.models.api import VLModel
from cxr_explorer.retrieval.models.text_model import TextTokenizer


def real_size_model(precision: str) -> VLModel:
    """BioViL's real architecture (ResNet-50 + BERT-base, 30,522-token vocab) with seeded weights: timing only."""
    from benchmarks.common import seeded_model

    return seeded_model("biovil", precision)


def query_of_tokens(tok: TextTokenizer, n: int) -> str:
    """A radiology phrase of exactly ``n`` tokens ([CLS] and [SEP] included) under ``tok``."""
    words = "small left pleural effusion with basilar atelectasis and mild cardiomegaly no pneumothorax".split()
    words = words * 4
    for k in range(1, len(words)):
        if tok.count_tokens(" ".join(words[:k])) >= n:
            text = " ".join(words[:k])
            assert tok.count_tokens(text) == n, "choose other words"
            return text
    raise ValueError("query too short")


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    models = {"fp32": real_size_model("fp32"), "bf16": real_size_model("bf16")}
    models["bf16"].image_model.load_state_dict(models["fp32"].image_model.state_dict())
    # the text towers are seeded by name alike (the bf16 one may be text_fast's packed forward, which loads nothing)
    x8 = torch.rand(8, 3, 480, 480)
    query = query_of_tokens(models["fp32"].tokenizer, 16)
    ntok = models["fp32"].tokenizer.count_tokens(query)
    for m in models.values():  # warm-up
        m.embed_images(x8[:1]), m.embed_texts([query])
    img: dict[str, list[float]] = {f"{p}/b{b}": [] for p in models for b in (1, 8)}
    txt: dict[str, list[float]] = {p: [] for p in models}
    for _ in range(args.rounds):
        for p, m in models.items():
            img[f"{p}/b1"].append(1 / timed(lambda m=m: m.embed_images(x8[:1])))
            img[f"{p}/b8"].append(8 / timed(lambda m=m: m.embed_images(x8)))
            txt[p].append(1000 * statistics.median(timed(lambda m=m: m.embed_texts([query])) for _ in range(5)))
    a, b = models["fp32"].encode_images(x8), models["bf16"].encode_images(x8)
    pair = [query, "no pneumothorax"]
    ta, tb = models["fp32"].embed_texts(pair), models["bf16"].embed_texts(pair)
    result = {
        "machine": f"{cpu_name()}, {torch.get_num_threads()} torch threads",
        "images_per_s_480px": {k: round(statistics.median(v), 2) for k, v in img.items()},
        "text_ms_query": {k: round(statistics.median(v), 1) for k, v in txt.items()}, "query_tokens": ntok,
        "cosine_fp32_vs_bf16": {
            "global_min": round(float((a.global_emb * b.global_emb).sum(-1).min()), 5),
            "patch_min": round(float((a.patches * b.patches).sum(-1).min()), 5),
            "patch_mean": round(float((a.patches * b.patches).sum(-1).mean()), 5),
            "text_min": round(float((ta * tb).sum(-1).min()), 5)},
        "rounds": args.rounds,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Composed queries, relevance feedback and collections: quality on the covid corpus's labels with PLANTED vectors,
and latency on synthetic bundles.

``python -m benchmarks.compose [--smoke] [--out benchmarks/results/compose.json]``

Quality: the seeded weights give no structure, so each covid label gets a random direction, each case's image vector
is its labels' directions plus noise, and a phrase naming a label embeds to that label's direction (planted). It
reports the share of the top-k hits that carry an excluded label with and without ``--not`` (penalty and exclusion;
exclusion must leave no hit above its threshold), and recall@k of a held-out label after 1-3 feedback rounds of 10
marks (a simulated user marks the first 10 unmarked hits by their labels) against the plain query.
Latency (same process, medians side by side): a 4-part composed text query vs a plain text query end to end with the
real-size text tower (seeded weights: speed only) at fp32 and, where ``auto`` picks another precision on this
CPU (bf16 where it is native), at that one too, a feedback round on 100k vectors beyond the same search, and a
collection add of 1,000 cases (with its fsync).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.common import SEEDED_NOTE, machine, ms_stats, seeded_model, time_calls
from cxr_explorer.retrieval.models.precision import resolve_precision

REPO = Path(__file__).resolve().parents[1]
COVID = REPO.parent / "shared" / "data" / "covid_chestxray" / "reports.csv"
PHRASES = ["left pleural effusion", "right lower lobe pneumonia", "cardiomegaly with edema", "pneumothorax",
           "bilateral patchy opacities", "left basal atelectasis", "lobar consolidation", "enlarged heart"]
DIM = 128


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def write_planted(root: Path, vectors: np.ndarray, meta: pd.DataFrame, model: Any) -> Path:
    """A bundle of ``vectors`` [N, D] and ``meta`` (id, labels) with 1x1 patch grids and one shared thumbnail; the
    2-D map step is left out (UMAP over 100k vectors takes minutes and no query reads the map)."""
    from unittest import mock

    from PIL import Image

    from cxr_explorer.index.decode import thumbnail_jpeg
    from cxr_explorer.retrieval.bundle import writer

    n = len(vectors)
    root.mkdir(parents=True, exist_ok=True)
    img = Image.new("L", (64, 64), 90)
    img.save(root / "case.png")
    meta = meta.assign(path=str(root / "case.png"), report="")
    steps = {k: v for k, v in writer.DERIVED.items() if k != "projections"}
    with mock.patch.dict(writer.DERIVED, steps, clear=True):
        return writer.write_bundle(root / "bundle", identity=model.identity.to_dict(), spec=model.spec.to_dict(),
                                   preprocessing=model.preprocessing.to_dict(), grid_shape=(1, 1), metadata=meta,
                                   sentences=pd.DataFrame({"row": pd.Series([], dtype="int64"),
                                                           "text": pd.Series([], dtype=str)}),
                                   image_emb=vectors, report_emb=np.zeros((0, vectors.shape[1]), np.float32),
                                   report_rows=np.zeros(0, np.int64),
                                   sentence_emb=np.zeros((0, vectors.shape[1]), np.float32),
                                   patches=vectors[:, None, None, :].astype(np.float16),
                                   thumbnails=[thumbnail_jpeg(img)] * n, skipped=[],
                                   build={"command": "benchmarks/compose.py"}, index_type="flat")


def planted_covid(tmp: Path, model: Any, seed: int = 0) -> tuple[Any, dict[str, np.ndarray], list[set[str]]]:
    """(engine, label -> planted direction, labels per row) over the covid corpus's labels."""
    from cxr_explorer.retrieval.bundle.reader import Bundle
    from cxr_explorer.retrieval.engine.engine import Engine

    rng = np.random.default_rng(seed)
    table = pd.read_csv(COVID, usecols=["image_id", "labels"]).fillna({"labels": "No Finding"})
    labels = [set(str(s).split(";")) for s in table["labels"]]
    names = sorted(set().union(*labels))
    dirs = {name: _unit(rng.standard_normal(DIM)) for name in names}
    vecs = _unit(np.stack([sum(dirs[name] for name in ls) / np.sqrt(len(ls)) for ls in labels])
                 + 0.6 * rng.standard_normal((len(labels), DIM)) / np.sqrt(DIM))
    meta = pd.DataFrame({"id": table["image_id"].astype(str), "labels": table["labels"].astype(str)})
    engine = Engine(Bundle.open(write_planted(tmp / "covid", vecs, meta, model)), model)

    return engine, dirs, labels


def _with(fn: Any, value: int, _: int) -> None:
    """``fn(value)`` for :func:`time_calls` (which passes its own call index)."""
    fn(value)


def plant_texts(engine: Any, known: dict[str, np.ndarray]) -> None:
    """Make the phrases in ``known`` embed to their planted vectors (the seeded text tower gives no structure)."""
    engine.encoder.text_embeddings = lambda texts: [known[t] for t in texts]


def exclusion_share(engine: Any, dirs: dict[str, np.ndarray], labels: list[set[str]], also: str, negative: str,
                    k: int, threshold: float) -> dict[str, Any]:
    """Share of the top ``k`` carrying ``negative`` for a phrase planted between ``also`` and ``negative`` ("ARDS,
    not COVID-19"): plain, with a penalty, with an exclusion (and the hits left above its threshold)."""
    from cxr_explorer.retrieval.engine.compose import QueryPart

    positive = f"{also}-like"
    plant_texts(engine, {**dirs, positive: _unit(dirs[also] + dirs[negative])})
    pos = QueryPart("text", positive)
    runs = {"plain": [pos], "not (penalty)": [pos, QueryPart("text", negative, negative=True)],
            f"not (exclude above {threshold})": [pos, QueryPart("text", negative, negative=True,
                                                                exclude_above=threshold)]}
    out: dict[str, Any] = {"positive": positive, "negative": negative, "k": k}
    neg_dir = engine.encoder.text_embeddings([negative])[0]
    vecs = engine.cases.row_vectors()
    for name, parts in runs.items():
        hits = engine.search_composed(parts, k=k).hits
        rows = [h.hit.row for h in hits]
        out[name] = round(sum(negative in labels[r] for r in rows) / max(1, len(rows)), 3)
        if "exclude" in name:
            out["exclusion_violations"] = int(sum(float(vecs[r] @ neg_dir) > threshold for r in rows))
    return out


def feedback_recall(engine: Any, dirs: dict[str, np.ndarray], labels: list[set[str]], held_out: str, decoy: str,
                    k: int, rounds: int = 3, marks: int = 10) -> dict[str, Any]:
    """recall@k of ``held_out`` after 0..rounds feedback rounds of ``marks`` marks, from an ambiguous query that
    leans toward ``decoy`` (planted: the held-out direction plus 1.2x the decoy's)."""
    from cxr_explorer.retrieval.engine.compose import QueryPart

    query = "ambiguous query"
    plant_texts(engine, {**dirs, query: _unit(dirs[held_out] + 1.2 * dirs[decoy])})
    truth = {i for i, ls in enumerate(labels) if held_out in ls}
    ids = engine.cases.ids
    rel: list[str] = []
    non: list[str] = []
    out: dict[str, Any] = {"held_out": held_out, "decoy": decoy, "k": k, "positives": len(truth), "recall": []}
    for _ in range(rounds + 1):
        hits = engine.search_composed([QueryPart("text", query)], k=k, relevant=rel, not_relevant=non).hits
        rows = [h.hit.row for h in hits]
        out["recall"].append(round(len(truth & set(rows)) / len(truth), 3))
        fresh = [r for r in rows if ids[r] not in rel and ids[r] not in non][:marks]
        rel += [ids[r] for r in fresh if r in truth]
        non += [ids[r] for r in fresh if r not in truth]
    return out


def latency_composed(model: Any, tmp: Path, n: int, reps: int) -> dict[str, Any]:
    """Plain text query vs a 4-part composed query (3 phrases + 1 negative), both encoding fresh texts each call."""
    from cxr_explorer.retrieval.bundle.reader import Bundle
    from cxr_explorer.retrieval.engine.compose import QueryPart
    from cxr_explorer.retrieval.engine.engine import Engine

    rng = np.random.default_rng(1)
    meta = pd.DataFrame({"id": [f"c{i}" for i in range(n)], "labels": "x"})
    engine = Engine(Bundle.open(write_planted(tmp / f"lat-{n}", _unit(rng.standard_normal((n, DIM))), meta, model)),
                    model)

    def phrase(i: int, j: int) -> str:
        return f"{PHRASES[(i + j) % len(PHRASES)]} {i}-{j}"  # a new text each call: encoded, never cached

    def plain(i: int) -> None:
        engine.search_text(phrase(i, 0), k=10)

    def composed(i: int) -> None:
        engine.search_composed([QueryPart("text", phrase(i + 10_000, 0)), QueryPart("text", phrase(i + 10_000, 1)),
                                QueryPart("text", phrase(i + 10_000, 2), weight=0.5),
                                QueryPart("text", phrase(i + 10_000, 3), negative=True)], k=10)

    t_plain, t_comp = [], []
    for i in range(reps):  # interleaved: both see the same machine load
        t_plain.append(time_calls(partial(_with, plain, i), 1, warmup=0)[0])
        t_comp.append(time_calls(partial(_with, composed, i), 1, warmup=0)[0])
    p, c = ms_stats(t_plain), ms_stats(t_comp)
    return {"vectors": n, "plain": p, "composed_4_parts": c, "ratio_p50": round(c["p50_ms"] / p["p50_ms"], 2),
            "target_ratio": 1.5}


def latency_feedback(model: Any, tmp: Path, n: int, reps: int) -> dict[str, Any]:
    """The same (cached) query with and without 10 marks on ``n`` vectors: the round's cost beyond the search."""
    from cxr_explorer.retrieval.bundle.reader import Bundle
    from cxr_explorer.retrieval.engine.compose import QueryPart
    from cxr_explorer.retrieval.engine.engine import Engine

    rng = np.random.default_rng(2)
    meta = pd.DataFrame({"id": [f"c{i}" for i in range(n)], "labels": "x"})
    engine = Engine(Bundle.open(write_planted(tmp / f"fb-{n}", _unit(rng.standard_normal((n, DIM))), meta, model)),
                    model)
    parts = [QueryPart("text", "left pleural effusion")]
    rel, non = [f"c{i}" for i in range(0, 50, 10)], [f"c{i}" for i in range(5, 55, 10)]
    base, marked = [], []
    for _ in range(reps):
        base.append(time_calls(lambda _: engine.search_composed(parts, k=10, marked="rank"), 1, warmup=1)[0])
        marked.append(time_calls(lambda _: engine.search_composed(parts, k=10, relevant=rel, not_relevant=non,
                                                                  marked="rank"), 1, warmup=0)[0])
    b, m = ms_stats(base), ms_stats(marked)
    return {"vectors": n, "search": b, "search_with_round": m,
            "round_beyond_search_p50_ms": round(m["p50_ms"] - b["p50_ms"], 3), "target_ms": 50}


def latency_collection(tmp: Path, n: int, reps: int) -> dict[str, Any]:
    """Adding ``n`` cases to a collection (one locked append + fsync)."""
    from cxr_explorer.retrieval.collections.store import Collection

    ids = [f"c{i}" for i in range(n)]

    def add(r: int) -> None:
        Collection(tmp / "b", f"bench {r}").add(ids, source="query", detail="bench")

    times = [time_calls(partial(_with, add, r), 1, warmup=0)[0] for r in range(reps)]
    return {"cases": n, "add": ms_stats(times), "target_ms": 200}


def run_compose(smoke: bool = False) -> dict[str, Any]:
    """Every figure of the section (smoke: small sizes and the tiny model: plumbing only)."""
    from cxr_explorer.retrieval.models import load_model

    tiny = load_model("tiny-random", device="cpu")
    text_model = tiny if smoke else seeded_model("biovil")
    res: dict[str, Any] = {"machine": machine(), "note": "quality on PLANTED vectors over the covid labels; latency "
                           "with " + ("the tiny model (smoke)" if smoke else SEEDED_NOTE)}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if COVID.is_file():
            engine, dirs, labels = planted_covid(tmp, tiny)
            res["exclusion"] = exclusion_share(engine, dirs, labels, "ARDS", "COVID-19", k=20, threshold=0.3)
            res["feedback"] = feedback_recall(engine, dirs, labels, "Pneumocystis", "COVID-19", k=20)
        else:
            res["exclusion"] = res["feedback"] = {"status": f"skipped: {COVID} is absent"}
        res["latency_composed"] = latency_composed(text_model, tmp, 1_000 if smoke else 10_000, 5 if smoke else 20)
        if not smoke and (auto := resolve_precision("auto", torch.device("cpu"))) != "fp32":
            res["latency_composed_auto"] = {"precision": auto, **latency_composed(seeded_model("biovil", auto), tmp,
                                                                                  10_000, 20)}
        res["latency_feedback"] = latency_feedback(tiny, tmp, 2_000 if smoke else 100_000, 5 if smoke else 20)
        res["latency_collection_add"] = latency_collection(tmp, 1_000, 5 if smoke else 20)
    return res


def lines(res: dict[str, Any]) -> list[str]:
    """The section as markdown rows."""
    ex, fb = res["exclusion"], res["feedback"]
    lc, lf, la = res["latency_composed"], res["latency_feedback"], res["latency_collection_add"]
    rows = ["| measure | figure |", "|---|---|"]
    if "status" not in ex:
        excl = next(k for k in ex if k.startswith("not (exclude"))
        rows += [
            f"| share of top-{ex['k']} hits labelled {ex['negative']} for '{ex['positive']}' not {ex['negative']} "
            f"(planted) | plain {ex['plain']}, not (penalty) {ex['not (penalty)']}, {excl} {ex[excl]}; hits above "
            f"the threshold: {ex['exclusion_violations']} |",
            f"| recall@{fb['k']} of {fb['held_out']} ({fb['positives']} cases) after 0/1/2/3 feedback rounds of "
            f"10 marks (planted) | {' / '.join(str(r) for r in fb['recall'])} |"]
    return rows + [
        f"| 4-part composed vs plain text query, end to end ({lc['vectors']:,} vectors) | p50 "
        f"{lc['composed_4_parts']['p50_ms']} ms vs {lc['plain']['p50_ms']} ms: x{lc['ratio_p50']} (target <= 1.5) |",
        *([f"| the same at {auto['precision']} (the app's precision on this CPU) | p50 "
           f"{auto['composed_4_parts']['p50_ms']} ms vs {auto['plain']['p50_ms']} ms: x{auto['ratio_p50']} |"]
          if (auto := res.get("latency_composed_auto")) else []),
        f"| feedback round (10 marks) beyond the search, {lf['vectors']:,} vectors | p50 "
        f"{lf['round_beyond_search_p50_ms']} ms ({lf['search_with_round']['p50_ms']} vs {lf['search']['p50_ms']} ms; "
        "target <= 50) |",
        f"| collection add of {la['cases']:,} cases (locked append + fsync) | p50 {la['add']['p50_ms']} ms "
        "(target <= 200) |",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--smoke", action="store_true", help="small sizes, tiny model (plumbing only)")
    p.add_argument("--out", type=Path, default=None, help="write JSON here (and a .md beside it)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    res = run_compose(args.smoke)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["command"] = "python -m benchmarks.compose" + (" --smoke" if args.smoke else "")
    text = "\n".join(lines(res))
    print(text)
    if args.out is not None:
        args.out.write_text(json.dumps(res, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(f"# compose ({res['command']})\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

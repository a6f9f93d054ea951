"""Build throughput: the image encoder's own forward rate vs the whole decode -> preprocess -> embed job.

``build_ratio`` = (job images/s) / (encoder images/s), both at the same precision and batch size, in the same run.
``build_overhead`` = whole-job wall time / (image-model + text-model seconds of that job, from its manifest's
per-stage timings): 1.0 means the job costs only its model time (goal <= 1.10).
A ratio near 1 means the job is model-bound (decoding, batching and storage cost nothing extra).

The whole job is ``index.runner.run_build(BuildConfig(...), model=...)`` on covid_chestxray (``--limit`` items):
corpus reading, decode workers, image AND report/sentence embedding, atomic chunks and finalisation (FAISS indexes);
its rate is items / wall time of the call. ``image_stage`` additionally times only the image path (the job's own
``index.decode.DecodePool`` feeding ``VLModel.encode_images`` and float16 patch storage), whose ratio to the encoder
shows what decoding and batching cost; the difference to the whole job is the text encoder's and storage's share.

``build_reports`` (:func:`run_build_reports`): the same whole job on a radiology-report corpus, covid_chestxray's
images paired with Indiana University report texts. The goal is ``build_ratio`` >= 0.8 at bf16 with each distinct
sentence (and report) embedded once per build. covid_chestxray's notes are clinical case narratives (62% of their
sentences distinct, 69 tokens a note), so there the text encoder takes ~40% of model time whatever the code does;
radiology reports repeat themselves (19% of IU's sentences are distinct). Image ``i`` of covid_chestxray gets IU
report row ``i`` (findings + impression) in a CSV manifest, paired round by round with the encoder's own rate. The
pairing is synthetic (the images and reports are of different patients); only the rates mean anything.

    .venv/bin/python -m benchmarks.build --items 2592 --rounds 1 --out F   # build_reports alone, at any size
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.common import peak_rss_mib
from benchmarks.sentences import CORPORA
from cxr_explorer.index.corpus import CorpusOptions
from cxr_explorer.retrieval.bundle.store import read_manifest


def median(xs: list[float]) -> float:
    """The median of ``xs``, rounded to 3 decimals (how this section reports paired rounds)."""
    return round(float(np.median(xs)), 3)


def encoder_rate(model: Any, batch: int, n_batches: int) -> float:
    """Images/s of ``encode_images`` alone on preprocessed ``[batch, 3, crop, crop]`` input (one warm-up batch)."""
    crop = model.spec.crop
    x = torch.rand((batch, 3, crop, crop), generator=torch.Generator().manual_seed(0))
    model.encode_images(x)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        out = model.encode_images(x)
        out.patches.numpy().astype(np.float16)  # what the job stores; cheap, but part of "embed"
    return batch * n_batches / (time.perf_counter() - t0)


def _tasks(paths: list[Path], model: Any) -> list[Any]:
    from cxr_explorer.index.decode import DecodeTask

    pp = model.preprocessing
    return [DecodeTask(id=p.stem, abspath=str(p), label=p.name, resize=pp.resize, crop=pp.crop) for p in paths]


def job_rate(model: Any, paths: list[Path], batch: int, workers: int) -> tuple[float, str]:
    """Images/s of decode + preprocess (index job's DecodePool) + embed + float16 patch storage over ``paths``."""
    from cxr_explorer.index.decode import Decoded, DecodePool, to_model_input

    with DecodePool(workers, prefetch=max(2 * batch, 4)) as pool:
        for _ in pool.stream(_tasks(paths[:1], model)):  # start the workers outside the timing
            pass
        stored: list[np.ndarray] = []
        t0 = time.perf_counter()
        pending: list[np.ndarray] = []
        for _, result in pool.stream(_tasks(paths, model)):
            if isinstance(result, Decoded):
                pending.append(result.pixels)
            if len(pending) == batch:
                stored.append(model.encode_images(to_model_input(pending)).patches.numpy().astype(np.float16))
                pending = []
        if pending:
            stored.append(model.encode_images(to_model_input(pending)).patches.numpy().astype(np.float16))
        elapsed = time.perf_counter() - t0
    done = sum(len(s) for s in stored)
    method = f"cxr_explorer.index.decode.DecodePool(workers={workers}) + VLModel.encode_images, one process"
    return done / elapsed, method


def whole_job_rate(model: Any, corpus: Path, limit: int, batch: int, workers: int, tmp: Path, tag: str,
                   options: CorpusOptions | None = None) -> tuple[float, dict[str, Any]]:
    """Items/s of the real index job (``index.runner.run_build`` with this model) on ``limit`` corpus items
    (``options``: an ``index.corpus.CorpusOptions``, auto-detection when None)."""
    from cxr_explorer.index.runner import BuildConfig, run_build

    out = tmp / f"bundle-{tag}"
    cfg = BuildConfig(corpus=corpus, out=out, model=model.spec.name, corpus_options=options or CorpusOptions(),
                      device="cpu", precision=model.precision, workers=workers, threads=torch.get_num_threads(),
                      batch_size=batch, limit=limit, progress="none", command="benchmarks.run")
    t0 = time.perf_counter()
    summary = run_build(cfg, model=model)
    wall = time.perf_counter() - t0
    record = (read_manifest(out) or {})["build"]
    timings = record["timings"]
    text_s = timings.get("text_model_s", 0.0)
    model_s = timings.get("image_model_s", 0.0) + text_s
    return summary.count / wall, {"items": summary.count, "wall_s": round(wall, 2),
                                  "embed_phase_items_per_s": summary.images_per_s,
                                  "timings": timings, "model_share": round(model_s / wall, 3),
                                  "build_overhead": round(wall / max(model_s, 1e-9), 3),
                                  "text_encoder": record.get("text_encoder"),
                                  "text_share_of_model": round(text_s / max(model_s, 1e-9), 3),
                                  "skipped": summary.skipped_by_reason}


def report_texts(n: int, model: Any, csv: Path | None) -> list[str]:
    """``n`` report texts that fit the text model (real covid_chestxray notes when present, else synthetic)."""
    from cxr_explorer.retrieval.inputs.text import clean_text

    texts: list[str] = []
    if csv is not None and csv.is_file():
        import pandas as pd

        for note in pd.read_csv(csv)["findings"].dropna():
            t = clean_text(note)
            if t and model.tokenizer.count_tokens(t) <= model.tokenizer.max_length:
                texts.append(t)
            if len(texts) == n:
                break
    filler = "There is mild cardiomegaly. No focal consolidation, pleural effusion or pneumothorax is seen. "
    while len(texts) < n:
        texts.append(filler * (1 + len(texts) % 3))
    return texts


def text_rate(model: Any, texts: list[str], batch: int) -> float:
    """Reports/s of ``embed_texts`` over ``texts`` in batches (one warm-up batch)."""
    model.embed_texts(texts[:batch])
    t0 = time.perf_counter()
    for start in range(0, len(texts), batch):
        model.embed_texts(texts[start:start + batch])
    return len(texts) / (time.perf_counter() - t0)


def _precision_rounds(model: Any, paths: list[Path], texts: list[str], batch: int, n_batches: int, workers: int,
                      corpus: Path | None, tmp: Path, rounds: int, precision: str) -> tuple[dict[str, Any], str]:
    """Each round: encoder, image stage, whole job, encoder again; ratios are paired within a round (same load)
    and their medians reported, so a busy neighbour in one round cannot skew a ratio."""
    enc, stage, job, stage_ratio, build_ratio, jobs = [], [], [], [], [], []
    mode = ""
    has_corpus = corpus is not None and corpus.is_dir()
    for r in range(rounds):
        before = encoder_rate(model, batch, n_batches)
        rate, mode = job_rate(model, paths, batch, workers)
        if has_corpus:
            assert corpus is not None
            job_rate_r, info = whole_job_rate(model, corpus, len(paths), batch, workers, tmp, f"{precision}-{r}")
            job.append(job_rate_r)
            jobs.append(info)
        after = encoder_rate(model, batch, n_batches)
        ref = (before + after) / 2
        enc += [before, after]
        stage.append(rate)
        stage_ratio.append(rate / ref)
        if has_corpus:
            build_ratio.append(job[-1] / ref)
    row: dict[str, Any] = {
        "encoder_images_per_s": median(enc), "image_stage_images_per_s": median(stage),
        "image_stage_ratio": median(stage_ratio), "encoder_runs": [round(x, 3) for x in enc],
        "image_stage_runs": [round(x, 3) for x in stage], "reports_per_s": round(text_rate(model, texts, 16), 3)}
    if has_corpus:
        row.update({"job_images_per_s": median(job), "build_ratio": median(build_ratio),
                    "build_ratio_runs": [round(x, 3) for x in build_ratio],
                    "model_share_of_job": median([j["model_share"] for j in jobs]),
                    "build_overhead": median([j["build_overhead"] for j in jobs]),
                    "text_share_of_model": median([j["text_share_of_model"] for j in jobs]), "job": jobs[-1]})
    else:  # no corpus here: the image stage stands in for the job, and says so
        row.update({"job_images_per_s": row["image_stage_images_per_s"], "build_ratio": row["image_stage_ratio"],
                    "job": {"note": "corpus missing: whole job = image stage only"}})
    return row, mode


def run_build(model: Any, paths: list[Path], reports_csv: Path | None, batch: int, n_batches: int,
              n_reports: int, workers: int, corpus: Path | None, tmp: Path, rounds: int = 2,
              precisions: tuple[str, ...] = ("fp32", "bf16")) -> dict[str, Any]:
    """Encoder vs whole-job vs image-stage images/s and reports/s per precision; ``build_ratio``; peak RSS."""
    texts = report_texts(n_reports, model, reports_csv)
    tokens = [model.tokenizer.count_tokens(t) for t in texts]
    out: dict[str, Any] = {"batch": batch, "images": len(paths), "encoder_images": batch * n_batches,
                           "reports": len(texts), "report_tokens_mean": round(float(np.mean(tokens)), 1),
                           "decode_workers": workers, "precisions": {}}
    for precision in precisions:
        model.precision = precision
        out["precisions"][precision], mode = _precision_rounds(model, paths, texts, batch, n_batches, workers,
                                                               corpus, tmp, rounds, precision)
        out["image_stage_mode"] = mode
    model.precision = "fp32"
    out["build_ratio"] = out["precisions"]["fp32"]["build_ratio"] if "fp32" in out["precisions"] else None
    for precision, row in out["precisions"].items():  # whole-job time / (image-model + text-model time)
        out[f"build_overhead_{precision}"] = row.get("build_overhead")
        out[f"build_ratio_{precision}"] = row.get("build_ratio")
    out["peak_rss_mib_after_build"] = round(peak_rss_mib(), 1)
    return out


COVID_IMAGES = 648  # covid_chestxray's images: one pass of them is the --quick corpus
OPTIONS = CorpusOptions(image_col="image", text_cols=("findings", "impression"), id_col="id", preset="none")


def missing_data() -> str | None:
    """Why the section cannot run here (its shared data is absent), or None."""
    from benchmarks.run import SHARED_DATA

    if CORPORA["iu_xray_reports"].is_file() and SHARED_DATA.is_dir():
        return None
    return "../shared/data (iu_xray_reports, covid_chestxray) is absent"


def paired_manifest(images: list[Path], iu_csv: Path, out: Path, items: int | None = None) -> Path:
    """Write ``out`` (CSV: id, image, findings, impression) of ``items`` rows (default: one per image): row i is the
    i-th IU row that has report text, with image ``i % len(images)`` (images repeat past the first pass)."""
    iu = pd.read_csv(iu_csv, usecols=["findings", "impression"])
    iu = iu[iu["findings"].notna() | iu["impression"].notna()]
    n = min(items or len(images), len(iu))
    pd.DataFrame({"id": [f"r{i:05d}" for i in range(n)], "image": [str(images[i % len(images)]) for i in range(n)],
                  "findings": iu["findings"].tolist()[:n], "impression": iu["impression"].tolist()[:n]}
                 ).to_csv(out, index=False)
    return out


def run_build_reports(model: Any, images: list[Path], tmp: Path, batch: int = 1, n_batches: int = 16,
                      workers: int = 1, rounds: int = 2, precisions: tuple[str, ...] = ("bf16",),
                      items: int | None = None) -> dict[str, Any]:
    """Per precision: encoder img/s, whole-job items/s, ``build_ratio``, ``build_overhead``, text calls saved (the IU
    reports must be present: :data:`benchmarks.sentences.CORPORA`)."""
    csv = paired_manifest(images, CORPORA["iu_xray_reports"], tmp / "radiology-reports.csv", items)
    out: dict[str, Any] = {"items": len(pd.read_csv(csv)), "images": len(images), "batch": batch,
                           "decode_workers": workers, "rounds": rounds,
                           "corpus": "iu_xray_reports rows with text i=0..n-1 (findings, impression), each with "
                                     "covid_chestxray image i mod images", "precisions": {}}
    for precision in precisions:
        model.precision = precision
        ratios, jobs, enc = [], [], []
        for r in range(rounds):
            before = encoder_rate(model, batch, n_batches)
            rate, info = whole_job_rate(model, csv, out["items"], batch, workers, tmp, f"reports-{precision}-{r}",
                                        OPTIONS)
            after = encoder_rate(model, batch, n_batches)
            enc += [before, after]
            ratios.append(rate / ((before + after) / 2))
            jobs.append((rate, info))
        out["precisions"][precision] = {
            "encoder_images_per_s": median(enc), "job_items_per_s": median([j[0] for j in jobs]),
            "build_ratio": median(ratios), "build_ratio_runs": [round(x, 3) for x in ratios],
            "build_overhead": median([j[1]["build_overhead"] for j in jobs]),
            "text_share_of_model": median([j[1]["text_share_of_model"] for j in jobs]),
            "image_model_share_cap": median([1 - j[1]["text_share_of_model"] for j in jobs]),
            "text_encoder": jobs[-1][1]["text_encoder"], "job": jobs[-1][1]}
    model.precision = "fp32"
    return out


def main() -> None:
    """Command line: the section alone, at any corpus size, into one JSON file (the machine named in it)."""
    import argparse
    import json
    import tempfile
    import time

    from benchmarks.common import machine, seeded_model
    from benchmarks.run import image_paths

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=COVID_IMAGES, help="corpus rows (images repeat past the 648)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    missing = missing_data()
    if missing is not None:
        raise SystemExit(missing)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = run_build_reports(seeded_model("biovil"), image_paths(COVID_IMAGES, Path(tmp)), Path(tmp),
                                rounds=args.rounds, items=args.items)
    doc = {"command": f"python -m benchmarks.build --items {args.items} --rounds {args.rounds}",
           "machine": machine(), "wall_s": round(time.perf_counter() - t0, 1), "build_reports": res}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(res["precisions"], indent=1)[:2000])


if __name__ == "__main__":
    main()

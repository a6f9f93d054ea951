"""Build rate on a radiology-report corpus: covid_chestxray's images paired with Indiana University report texts.

Issue 12 sets ``build_ratio`` >= 0.8 at bf16 *after the sentence work*: each distinct sentence (and each distinct
report) is embedded once per build. covid_chestxray's notes are clinical case narratives (62% of their sentences
are distinct, 69 tokens a note), so there the text encoder takes ~40% of model time whatever the code does. Radiology
reports repeat themselves (19% of IU's sentences are distinct); this section measures the same whole job on that kind
of text: image ``i`` of covid_chestxray gets IU report row ``i`` (findings + impression) in a CSV manifest, and the
job is ``index.runner.run_build`` on it, paired round by round with the encoder's own rate, as the ``build`` section
does. The pairing is synthetic (the images and reports are of different patients); only the rates mean anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from cxr_explorer.index.corpus import CorpusOptions

from benchmarks.build import encoder_rate, median, whole_job_rate
from benchmarks.common import set_precision
from benchmarks.sentences import CORPORA

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
        set_precision(model, precision)
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
    set_precision(model, "fp32")
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
    doc = {"command": f"python -m benchmarks.build_reports --items {args.items} --rounds {args.rounds}",
           "machine": machine(), "wall_s": round(time.perf_counter() - t0, 1), "build_reports": res}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(res["precisions"], indent=1)[:2000])


if __name__ == "__main__":
    main()

"""A small corpus whose reports exercise every text path: short, far past 512 tokens, oddly spaced, ordinary.

``write_text_corpus(root)`` writes PNGs and ``corpus.csv`` (reports exactly as in :data:`REPORTS`, raw).
``python -m tests.helpers.text_corpus`` builds it with ``tiny-random`` at fp32 and writes the report and sentence
vectors to ``tests/index/text_vectors.npz``, the pinned vectors ``tests/index/test_text_vectors.py`` compares a fresh
build with; regenerate it only when a change of the stored vectors is intended.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.helpers.corpora import png_bytes
from tests.helpers.paths import REPO

_ANATOMY = ("apex", "hilum", "base", "costophrenic angle", "mediastinum", "hemidiaphragm", "fissure", "lingula")
_FINDINGS = ("nodule", "opacity", "calcified granuloma", "band of atelectasis", "cavity", "bulla", "scar")
#: 90 distinct sentences: far past the text encoder's 512 tokens.
LONG = " ".join(f"Finding {i} is a {_FINDINGS[i % 7]} of {3 + i % 11} millimetres near the right "
                f"{_ANATOMY[i % 8]} in zone {i % 5}." for i in range(90))
ODD = ("\t  Moderate   cardiomegaly with\tprominent  pulmonary vessels.\n\nNo  focal consolidation.  \r\n"
       "  Trace bilateral   pleural fluid.   ")
REPORTS: dict[str, str] = {
    "short": "Small left pneumothorax.",
    "long": LONG,
    "odd": ODD,
    "fracture": "Healing fracture of the posterior left seventh rib. Lungs are otherwise clear.",
    "line": "Right internal jugular catheter tip in the superior vena cava. No complication.",
    "edema": "Diffuse interstitial edema and Kerley B lines, consistent with fluid overload!",
}


def write_text_corpus(root: Path) -> Path:
    """PNGs and a CSV (image_path, report) with one row per :data:`REPORTS` entry, ids = its keys."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (name, report) in enumerate(REPORTS.items()):
        (root / "images" / f"{name}.png").write_bytes(png_bytes(100 + k))
        rows.append({"id": name, "image_path": f"images/{name}.png", "report": report})
    path = root / "corpus.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def build_text_bundle(root: Path) -> Path:
    """Build :func:`write_text_corpus` with tiny-random at fp32, in-process; returns the bundle folder."""
    from cxr_explorer.index.runner import BuildConfig, run_build
    from tests.helpers.synthetic import tiny_model

    out = root / "bundle"
    run_build(BuildConfig(corpus=write_text_corpus(root), out=out, model="tiny-random", precision="fp32",
                          workers=0, threads=1, progress="none"), model=tiny_model())
    return out


def stored_vectors(bundle: Path) -> dict[str, np.ndarray]:
    """The bundle's ids, report vectors [R, D] with their item rows [R], sentence texts [S] and vectors [S, D]."""
    from cxr_explorer.retrieval.bundle.reader import Bundle

    with Bundle.open(bundle) as b:
        return {"ids": np.asarray(b.metadata["id"].astype(str).tolist(), dtype=str),
                "report_rows": np.asarray(b.ids("reports")), "report_emb": np.array(b.vectors("reports"), np.float32),
                "sentences": np.asarray(b.sentences["text"].astype(str).tolist(), dtype=str),
                "sentence_emb": np.array(b.vectors("sentences"), np.float32)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        arrays: dict[str, Any] = stored_vectors(build_text_bundle(Path(tmp)))
    np.savez(REPO / "tests" / "index" / "text_vectors.npz", **arrays)


if __name__ == "__main__":
    main()

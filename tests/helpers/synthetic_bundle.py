"""A small tiny-random bundle for the app tests: synthetic PNGs, reports, ``view`` / ``labels`` / ``source`` columns.

Patches, report and sentence vectors come from the ``tiny-random`` model; image vectors are planted (seeded, two
clusters, case 7 a near-copy of case 0) because the random model gives every image nearly the same embedding.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from cxr_explorer.index.decode import thumbnail_jpeg
from cxr_explorer.retrieval.bundle.writer import write_bundle
from cxr_explorer.retrieval.inputs.text import split_sentences
from cxr_explorer.retrieval.inputs.text_embedding import embed_windows, plan_text
from PIL import Image

from tests.helpers.synthetic import draw_image, tiny_model
from tests.helpers.synthetic import planted_vectors as _planted

REPORTS = [
    "Small left pleural effusion. No pneumothorax.",
    "Right lower lobe consolidation. Heart size normal.",
    "",
    "Cardiomegaly with mild pulmonary edema.",
    "No acute cardiopulmonary process.",
    "Large right pleural effusion. Left basal atelectasis.",
    "Right upper lobe opacity, possibly pneumonia.",
    "Small left pleural effusion. No pneumothorax.",
]
VIEWS = ["PA", "AP", "PA", "AP", "PA", "LATERAL", "AP", "PA"]
LABELS = ["Effusion", "Pneumonia|Consolidation", "", "Cardiomegaly|Edema", "No Finding", "Effusion|Atelectasis",
          "Pneumonia", "Effusion"]
SIZES = [(96, 80), (80, 100), (120, 90), (88, 88), (100, 70), (70, 110), (90, 120), (96, 80)]
DUP_OF = {7: 0}



def planted_vectors(n: int, dim: int) -> np.ndarray:
    """[n, dim] planted unit vectors with this module's DUP_OF near-copies."""
    return _planted(n, dim, DUP_OF, clusters=2)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def build(root: Path, reports: list[str] | None = None, labels: list[str] | None = None) -> Path:
    """Write ``root/images/*.png`` and the bundle ``root/bundle``; returns the bundle folder. ``reports`` and
    ``labels`` (8 each) replace the module's defaults."""
    model = tiny_model()
    REPORTS = list(reports or globals()["REPORTS"])  # noqa: N806 (the module's lists, optionally replaced)
    LABELS = list(labels or globals()["LABELS"])  # noqa: N806
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, paths = [], []
    for i, (w, h) in enumerate(SIZES):
        img = draw_image(DUP_OF.get(i, i), w, h)
        path = root / "images" / f"case{i}.png"
        img.save(path)
        images.append(img)
        paths.append(str(path))
    batch = np.stack([model.preprocess(img).numpy() for img in images])
    import torch

    patches = model.encode_images(torch.from_numpy(batch)).patches.numpy().astype(np.float16)
    report_rows = np.array([i for i, r in enumerate(REPORTS) if r], dtype=np.int64)
    tok = model.tokenizer
    report_emb = np.stack([embed_windows(plan_text(REPORTS[i], tok.count_tokens, tok.max_length).windows,
                                         lambda ws: model.embed_texts(ws).numpy()) for i in report_rows])
    sent = [(i, s) for i, r in enumerate(REPORTS) for s in split_sentences(r)]
    sentences = pd.DataFrame(sent, columns=["row", "text"])
    sentence_emb = model.embed_texts(list(sentences["text"])).numpy().astype(np.float32)
    meta = pd.DataFrame({"id": [f"case{i}" for i in range(len(SIZES))], "path": paths, "report": REPORTS,
                         "view": VIEWS, "labels": LABELS, "source": ["synthetic"] * len(SIZES),
                         "width": [w for w, _ in SIZES], "height": [h for _, h in SIZES]})
    return write_bundle(root / "bundle", identity=model.identity.to_dict(), spec=model.spec.to_dict(),
                        preprocessing=model.preprocessing.to_dict(), grid_shape=tuple(patches.shape[1:3]),
                        metadata=meta, sentences=sentences, image_emb=planted_vectors(len(SIZES), 128),
                        report_emb=report_emb, report_rows=report_rows, sentence_emb=sentence_emb, patches=patches,
                        thumbnails=[thumbnail_jpeg(img) for img in images],
                        skipped=[{"id": "broken", "path": "images/broken.png", "reason": "corrupt",
                                  "detail": "cannot decode image"}],
                        build={"command": "tests/helpers/synthetic_bundle.py"})


if __name__ == "__main__":
    import sys

    print(build(Path(sys.argv[1])))

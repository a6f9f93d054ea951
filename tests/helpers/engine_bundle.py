"""A small engine test bundle: seven PNG cases with reports, sentences, metadata and PLANTED image vectors.

Written with ``write_bundle`` and the ``tiny-random`` model. The tiny model's random weights give every image nearly
the same global embedding, so the bundle stores planted image vectors (seeded random unit vectors, row 6 a near-copy
of row 0); patches, report and sentence vectors are the model's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from cxr_explorer.index.decode import thumbnail_jpeg
from cxr_explorer.retrieval.bundle.writer import write_bundle
from cxr_explorer.retrieval.models import VLModel

from tests.helpers.synthetic import draw_image
from tests.helpers.synthetic import planted_vectors as _planted

REPORTS = ["Small left pleural effusion. No pneumothorax.", "Right lower lobe consolidation. Heart size normal.", "",
           "Cardiomegaly with mild pulmonary edema.", "No acute cardiopulmonary process.",
           "Large right pleural effusion. Left basal atelectasis.", "Small left pleural effusion. No pneumothorax."]
SEX = ["F", "M", "F", "M", "F", "M", "F"]
LABELS = ["Effusion", "Pneumonia|Consolidation", "", "Cardiomegaly|Edema", "No Finding", "Effusion|Atelectasis",
          "Effusion"]
SIZES = [(96, 80), (80, 100), (120, 90), (88, 88), (100, 70), (70, 110), (96, 80)]
DUP_OF = {6: 0}


def planted_vectors(n: int, dim: int) -> np.ndarray:
    """[n, dim] planted unit vectors with this module's DUP_OF near-copies."""
    return _planted(n, dim, DUP_OF, clusters=1)


def build_test_bundle(root: Path, model: VLModel, sizes_in_metadata: bool = True) -> Path:
    """Write PNGs under ``root/images`` and a bundle at ``root/bundle``; returns the bundle folder."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, paths = [], []
    for i, (w, h) in enumerate(SIZES):
        img = draw_image(DUP_OF.get(i, i), w, h)
        if i in DUP_OF:
            img.putpixel((1, 1), 255)
        path = root / "images" / f"case{i}.png"
        img.save(path)
        images.append(img)
        paths.append(str(path))
    enc = model.encode_images(torch.stack([model.preprocess(img) for img in images]))
    sentences = [(r, s) for r, rep in enumerate(REPORTS) for s in rep.replace(". ", ".|").split("|") if s]
    report_rows = [r for r, rep in enumerate(REPORTS) if rep]
    meta = pd.DataFrame({"id": [f"case{i}" for i in range(len(SIZES))], "path": paths, "report": REPORTS,
                         "sex": SEX, "labels": LABELS})
    if sizes_in_metadata:
        meta["width"], meta["height"] = [w for w, _ in SIZES], [h for _, h in SIZES]
    return write_bundle(
        root / "bundle", identity=model.identity.to_dict(), spec=model.spec.to_dict(),
        preprocessing=model.preprocessing.to_dict(), grid_shape=enc.patches.shape[1:3], metadata=meta,
        sentences=pd.DataFrame({"row": [r for r, _ in sentences], "text": [s for _, s in sentences]}),
        image_emb=planted_vectors(len(SIZES), enc.global_emb.shape[1]),
        report_emb=model.embed_texts([REPORTS[r] for r in report_rows]).numpy(), report_rows=np.array(report_rows),
        sentence_emb=model.embed_texts([s for _, s in sentences]).numpy(),
        patches=enc.patches.numpy().astype(np.float16), thumbnails=[thumbnail_jpeg(img) for img in images],
        skipped=[], build={"command": "test"}, index_type="flat")

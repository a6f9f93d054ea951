"""The one factory of test bundles: every bundle a test writes goes through :func:`write_test_bundle`.

A bundle's arrays, as :func:`retrieval.bundle.writer.write_bundle` takes them, for N items with R non-empty reports,
S sentences, embedding width D and a patch grid h x w:

- ``metadata``: N rows with ``id``, ``path``, ``report`` and any metadata columns; ``sentences``: S rows (row, text)
- ``image_emb`` [N, D], ``report_emb`` [R, D] with ``report_rows`` [R] int64, ``sentence_emb`` [S, D]: float32
  unit rows
- ``patches`` [N, h, w, D] float16, ``thumbnails``: N JPEG byte strings, ``skipped``: dicts (id, path, reason,
  detail)

Two kinds of content: :func:`random_arrays` (seeded random unit vectors, tiny JPEGs; format and search tests) and
:func:`model_bundle` (drawn PNG cases of a :class:`Cases` set embedded by the ``tiny-random`` model, with PLANTED image
vectors because the random model gives every image nearly the same embedding; engine, CLI and app tests).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from cxr_explorer.index.decode import thumbnail_jpeg
from cxr_explorer.retrieval.bundle.writer import write_bundle
from cxr_explorer.retrieval.inputs.text import split_sentences
from cxr_explorer.retrieval.inputs.text_embedding import embed_windows, plan_text
from cxr_explorer.retrieval.models import VLModel
from tests.helpers.synthetic import draw_image, planted_vectors

DIM, GRID = 128, (3, 3)
IDENTITY: dict[str, Any] = {"name": "tiny-random", "revision": None, "image_md5": None, "verified": False}
SPEC: dict[str, Any] = {"name": "tiny-random"}
PREPROCESSING: dict[str, Any] = {"resize": 512, "crop": 480}
BUILD: dict[str, Any] = {"command": "cxr-explorer build c.csv --out b"}
ARRAY_NAMES = ("metadata", "sentences", "image_emb", "report_emb", "report_rows", "sentence_emb", "patches",
               "thumbnails", "skipped")
"""The arrays of a bundle, as :func:`write_test_bundle` takes them."""
SKIPPED_ONE = [{"id": "bad", "path": "images/bad.png", "reason": "corrupt", "detail": "cannot decode"}]


def unit_vectors(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Random float32 vectors of ``shape`` normalised along the last axis."""
    x = rng.normal(size=shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def jpeg(value: int, size: tuple[int, int] = (8, 6)) -> bytes:
    """A plain grey JPEG (``value`` 0..255) of ``size`` (width, height)."""
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="JPEG")
    return buf.getvalue()


def random_arrays(n: int = 5, *, seed: int = 0, prefix: str = "img", dim: int = DIM,
                  grid: tuple[int, int] = GRID) -> dict[str, Any]:
    """Arrays of ``n`` items (ids ``{prefix}{i}``): even rows have the report "No effusion. Heart normal." (two
    sentences), odd rows none; ``view`` PA/AP alternating, ``age`` 30+i; one skipped item; random unit vectors."""
    rng = np.random.default_rng(seed)
    reports = ["No effusion. Heart normal." if i % 2 == 0 else "" for i in range(n)]
    sentences = pd.DataFrame([(i, s) for i, r in enumerate(reports) if r for s in ("No effusion.", "Heart normal.")],
                             columns=["row", "text"])
    report_rows = np.array([i for i, r in enumerate(reports) if r], np.int64)
    meta = pd.DataFrame({"id": [f"{prefix}{i}" for i in range(n)],
                         "path": [f"images/{prefix}{i}.png" for i in range(n)],
                         "report": reports, "view": [["PA", "AP"][i % 2] for i in range(n)],
                         "age": [30 + i for i in range(n)]})
    return dict(metadata=meta, sentences=sentences, image_emb=unit_vectors(rng, n, dim),
                report_emb=unit_vectors(rng, len(report_rows), dim), report_rows=report_rows,
                sentence_emb=unit_vectors(rng, len(sentences), dim),
                patches=unit_vectors(rng, n, *grid, dim).astype(np.float16),
                thumbnails=[jpeg(10 * i) for i in range(n)], skipped=list(SKIPPED_ONE))


def write_test_bundle(root: Path, *, identity: Mapping[str, Any] = IDENTITY, spec: Mapping[str, Any] = SPEC,
                      preprocessing: Mapping[str, Any] = PREPROCESSING, grid_shape: Sequence[int] = GRID,
                      build: Mapping[str, Any] = BUILD, index_type: str = "auto", **arrays: Any) -> Path:
    """Write the next version of the bundle ``root`` and return ``root``. ``arrays`` (named as in the module
    docstring) replace those of :func:`random_arrays` (5 items, seed 0); pass all of them to write other content."""
    full = arrays if set(arrays) >= set(ARRAY_NAMES) else {**random_arrays(), **arrays}
    return write_bundle(root, identity=dict(identity), spec=dict(spec), preprocessing=dict(preprocessing),
                        grid_shape=grid_shape, build=dict(build), index_type=index_type, **full)


@dataclass(frozen=True)
class Cases:
    """A set of drawn cases: one report and (width, height) per case, metadata ``columns`` in order (one value per
    case; ``labels`` among them); ``dup_of`` maps a near-copy to its original (same drawing; ``mark_copies`` sets one
    pixel so that the files differ); planted image vectors come in ``clusters`` groups; ``skipped`` lists items the
    build is said to have skipped; ``index_type`` as :func:`retrieval.bundle.writer.build_index` takes it."""

    reports: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    columns: Mapping[str, tuple[str, ...]]
    dup_of: Mapping[int, int]
    clusters: int = 1
    mark_copies: bool = False
    skipped: tuple[Mapping[str, str], ...] = ()
    index_type: str = "auto"

    @property
    def labels(self) -> tuple[str, ...]:
        return self.columns["labels"]


_EFFUSION = "Small left pleural effusion. No pneumothorax."
ENGINE_CASES = Cases(
    reports=(_EFFUSION, "Right lower lobe consolidation. Heart size normal.", "",
             "Cardiomegaly with mild pulmonary edema.", "No acute cardiopulmonary process.",
             "Large right pleural effusion. Left basal atelectasis.", _EFFUSION),
    sizes=((96, 80), (80, 100), (120, 90), (88, 88), (100, 70), (70, 110), (96, 80)),
    columns={"sex": ("F", "M", "F", "M", "F", "M", "F"),
             "labels": ("Effusion", "Pneumonia|Consolidation", "", "Cardiomegaly|Edema", "No Finding",
                        "Effusion|Atelectasis", "Effusion")},
    dup_of={6: 0}, mark_copies=True, index_type="flat")
"""The engine and CLI bundle: 7 cases, case 6 a marked near-copy of case 0, ``sex`` and ``labels``, one cluster,
nothing skipped, a flat index."""

APP_CASES = Cases(
    reports=(*ENGINE_CASES.reports[:6], "Right upper lobe opacity, possibly pneumonia.", _EFFUSION),
    sizes=(*ENGINE_CASES.sizes[:6], (90, 120), (96, 80)),
    columns={"view": ("PA", "AP", "PA", "AP", "PA", "LATERAL", "AP", "PA"),
             "labels": (*ENGINE_CASES.labels[:6], "Pneumonia", "Effusion"), "source": ("synthetic",) * 8},
    dup_of={7: 0}, clusters=2,
    skipped=({"id": "broken", "path": "images/broken.png", "reason": "corrupt", "detail": "cannot decode image"},))
"""The app bundle: 8 cases (the engine's first six and two more), case 7 a near-copy of case 0, ``view``, ``labels``
and ``source``, two clusters, one skipped item."""


def draw_cases(folder: Path, cases: Cases) -> list[Path]:
    """Draw each case as ``folder/case{i}.png`` (grayscale, its size); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(cases.sizes):
        img = draw_image(cases.dup_of.get(i, i), w, h)
        if i in cases.dup_of and cases.mark_copies:
            img.putpixel((1, 1), 255)
        paths.append(folder / f"case{i}.png")
        img.save(paths[-1])
    return paths


def model_arrays(paths: Sequence[Path], model: VLModel, cases: Cases, reports: Sequence[str],
                 columns: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Arrays of the drawn cases at ``paths``: patches, report vectors (sentence windows over long reports, as the
    index job embeds them) and sentence vectors from ``model``; planted image vectors."""
    images = [Image.open(p).convert("L") for p in paths]
    enc = model.encode_images(torch.stack([model.preprocess(img) for img in images]))
    tok = model.tokenizer
    report_rows = np.array([i for i, r in enumerate(reports) if r], dtype=np.int64)
    report_emb = np.stack([embed_windows(plan_text(reports[i], tok.count_tokens, tok.max_length).windows,
                                         lambda ws: model.embed_texts(ws).numpy()) for i in report_rows])
    sentences = pd.DataFrame([(i, s) for i, r in enumerate(reports) for s in split_sentences(r)],
                             columns=["row", "text"])
    meta = pd.DataFrame({"id": [f"case{i}" for i in range(len(paths))], "path": [str(p) for p in paths],
                         "report": list(reports), **{k: list(v) for k, v in columns.items()}})
    return dict(metadata=meta, sentences=sentences,
                image_emb=planted_vectors(len(paths), enc.global_emb.shape[1], cases.dup_of, cases.clusters),
                report_emb=report_emb, report_rows=report_rows,
                sentence_emb=model.embed_texts(list(sentences["text"])).numpy().astype(np.float32),
                patches=enc.patches.numpy().astype(np.float16), thumbnails=[thumbnail_jpeg(img) for img in images])


def model_bundle(root: Path, model: VLModel, cases: Cases, *, reports: Sequence[str] | None = None,
                 labels: Sequence[str] | None = None, sizes_in_metadata: bool = True) -> Path:
    """Draw ``cases`` under ``root/images`` and write their bundle (next version of ``root/bundle``); returns the
    bundle folder. ``reports`` / ``labels`` (one per case) replace the set's; ``sizes_in_metadata`` adds ``width`` and
    ``height`` columns (without them the engine reads sizes from the files)."""
    columns: dict[str, Sequence[Any]] = {**cases.columns}
    if labels is not None:
        columns["labels"] = list(labels)
    if sizes_in_metadata:
        columns |= {"width": [w for w, _ in cases.sizes], "height": [h for _, h in cases.sizes]}
    paths = draw_cases(root / "images", cases)
    arrays = model_arrays(paths, model, cases, reports if reports is not None else cases.reports, columns)
    return write_test_bundle(root / "bundle", identity=model.identity.to_dict(), spec=model.spec.to_dict(),
                             preprocessing=model.preprocessing.to_dict(), grid_shape=arrays["patches"].shape[1:3],
                             build={"command": "tests/helpers/bundles.py"}, index_type=cases.index_type,
                             skipped=[dict(s) for s in cases.skipped], **arrays)

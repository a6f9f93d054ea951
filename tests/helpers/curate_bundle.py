"""Curation test material: a drawn frontal-CXR phantom, a tiny-random bundle with planted faults and a dummy check.

The bundle's image and report vectors come from :func:`tests.helpers.curate_faults.synthetic_faults` (the tiny model
maps every image to almost the same vector), its thumbnails are phantoms, and a few thumbnails carry pixel faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from cxr_explorer.index.decode import thumbnail_jpeg
from cxr_explorer.retrieval.bundle.writer import write_bundle
from cxr_explorer.retrieval.curate import registry
from cxr_explorer.retrieval.curate.base import CheckResult, CurateData, finish_table
from cxr_explorer.retrieval.curate.registry import CheckInputs, CheckSpec
from tests.helpers.curate_faults import Planted, synthetic_faults
from tests.helpers.synthetic import tiny_model


def phantom(seed: int, width: int = 400, height: int = 480) -> Image.Image:
    """A frontal chest X-ray cartoon: dark air, bright body, two dark lungs, a bright mediastinum and abdomen."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (width, height), 20)
    d = ImageDraw.Draw(img)
    d.ellipse([width * 0.05, height * 0.05, width * 0.95, height * 1.1], fill=150)
    for x0 in (0.15, 0.55):
        d.ellipse([width * x0, height * 0.15, width * (x0 + 0.3), height * 0.75], fill=60)
    d.rectangle([width * 0.45, height * 0.05, width * 0.55, height], fill=210)
    d.rectangle([width * 0.1, height * 0.8, width * 0.9, height], fill=190)
    img = img.filter(ImageFilter.GaussianBlur(4))  # soft tissue edges, as on a radiograph
    noise = rng.normal(0, 6, (height, width))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8), "L")


def burn_text(img: Image.Image) -> Image.Image:
    """A copy with white burnt-in letters in the top-left corner."""
    out = img.copy()
    ImageDraw.Draw(out).text((5, 5), "PORTABLE L", fill=255, font_size=max(12, img.width // 11))
    return out


PIXEL_FAULTS = {"rotated": lambda im: im.rotate(90, expand=True), "inverted": ImageOps.invert,
                "blank": lambda im: Image.new("L", im.size, 128), "upside-down": lambda im: im.rotate(180),
                "text": burn_text}
PIXEL_HINTS = {"rotated": "rotated 90 degrees?", "inverted": "inverted intensities?", "blank": "mostly blank",
               "upside-down": "upside down?", "text": "burnt-in text"}


@dataclass
class FaultBundle:
    """The bundle folder, its planted faults and the ids whose thumbnails carry each pixel fault."""

    root: Path
    planted: Planted
    pixel_faults: dict[str, str]


def build(root: Path, n: int = 400, rate: float = 0.02) -> FaultBundle:
    """Write a bundle of ``n`` cases with ``rate * n`` of each vector fault and one of each pixel fault."""
    planted = synthetic_faults(n, rate=rate, seed=1)
    data = planted.data
    model = tiny_model()
    faulty = sorted(set(data.ids) - planted.swapped - planted.flipped - planted.outliers - planted.duplicates)
    pixel_faults = {faulty[i * 7]: kind for i, kind in enumerate(PIXEL_FAULTS)}
    thumbs = []
    for i, case_id in enumerate(data.ids):
        img = phantom(i)
        kind = pixel_faults.get(str(case_id))
        thumbs.append(thumbnail_jpeg(PIXEL_FAULTS[kind](img) if kind else img))
    meta = data.metadata.copy()
    meta["path"] = [f"images/{i}.png" for i in meta["id"]]
    meta["report"] = [f"report of {i}" for i in meta["id"]]
    grid = (2, 2)
    bundle = write_bundle(
        root, identity=model.identity.to_dict(), spec=model.spec.to_dict(),
        preprocessing=model.preprocessing.to_dict(), grid_shape=grid, metadata=meta,
        sentences=pd.DataFrame({"row": np.arange(n), "text": meta["report"]}), image_emb=data.image_vectors,
        report_emb=data.report_vectors, report_rows=data.report_rows, sentence_emb=data.report_vectors,
        patches=np.zeros((n, *grid, data.image_vectors.shape[1]), dtype=np.float16), thumbnails=thumbs,
        skipped=[], build={"command": "tests/helpers/curate_bundle.py"})
    return FaultBundle(bundle, planted, pixel_faults)


@dataclass(frozen=True)
class ParityConfig:
    """The dummy check's one setting."""

    modulus: int = 2


def _parity(data: CurateData, settings: ParityConfig, inputs: CheckInputs) -> CheckResult:
    """Flags the cases whose row is a multiple of ``modulus``, worst (lowest row) first."""
    rows = np.arange(data.count)
    frame = pd.DataFrame({"id": data.ids, "row": rows, "severity": (rows % settings.modulus == 0).astype(float),
                          "flagged": rows % settings.modulus == 0, "evidence": "{}", "parity": rows % 2})
    return CheckResult(PARITY.name, PARITY.title, finish_table(frame, ["severity"], [False]),
                       {"modulus": settings.modulus}, {})


PARITY = CheckSpec(name="parity", title="Parity (test check)", help="flags every other case", looks_for="parity",
                   columns=("parity",), settings=ParityConfig, run=_parity)
"""A check that exists only in tests: registered through :func:`register_parity`, it shows that one registration
reaches the CLI and the Curate page."""


def register_parity(monkeypatch: pytest.MonkeyPatch) -> CheckSpec[ParityConfig]:
    """Register PARITY through the public ``register`` on a copy of the registry that ``monkeypatch`` puts back."""
    monkeypatch.setattr(registry, "_CHECKS", dict(registry._CHECKS))
    registry.register(PARITY)
    return PARITY

"""Live comparison with hi-ml-multimodal 0.2.2 where its virtualenv is present (``bash scripts/reference-venv.sh``
builds ``.venv-ref``; without it these tests skip). The reference preprocesses every committed input and extra sizes
chosen for the two rounding rules (odd crop margins, long-side fractions above .5, tiny and very wide images); our
preprocessing must match it pixel for pixel. No model is run, so this takes seconds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_explorer.retrieval.inputs.images import load_image
from cxr_explorer.retrieval.inputs.preprocess import Preprocessing
from tests.helpers.paths import REPO

REF_PYTHON = REPO / ".venv-ref" / "bin" / "python"
pytestmark = pytest.mark.skipif(not REF_PYTHON.is_file(), reason="reference virtualenv .venv-ref not present "
                                "(bash scripts/reference-venv.sh builds it)")
IMAGES = REPO / "tests" / "reference" / "images"
EXTRA_SIZES = [(652, 500), (500, 652), (29, 41), (41, 29), (1500, 211), (211, 1500), (513, 700), (8, 3)]
"""(width, height): long sides after Resize(512) 667, 723, 3639, 698 and 1365 (all odd; fractions above .5)."""

_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
import torch
lib = torch.library.Library("torchvision", "DEF")  # the shim of generate_fixture.py (see tests/reference/README.md)
lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
from health_multimodal.image.data.io import load_image
from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference
out = {}
for crop in (480, 448):
    transform = create_chest_xray_transform_for_inference(512, crop)
    for path in sys.argv[2:]:
        x = transform(load_image(Path(path)))
        out[f"{crop}/{path}"] = torch.round(x[0] * 255).to(torch.uint8).numpy()
np.savez(sys.argv[1], **out)
"""


def _inputs(tmp: Path) -> list[Path]:
    paths = sorted(IMAGES.iterdir())
    rng = np.random.default_rng(0)
    for w, h in EXTRA_SIZES:
        y, x = np.mgrid[0:h, 0:w]
        img = (127 + 60 * np.sin(x / max(w, 1) * 7) * np.cos(y / max(h, 1) * 5) + rng.normal(0, 20, (h, w)))
        paths.append(tmp / f"extra_{w}x{h}.png")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").save(paths[-1])
    return paths


def test_our_preprocessing_equals_hi_ml_on_every_size(tmp_path: Path) -> None:
    paths = _inputs(tmp_path)
    out = tmp_path / "reference.npz"
    subprocess.run([str(REF_PYTHON), "-c", _SCRIPT, str(out), *map(str, paths)], check=True, timeout=300,
                   capture_output=True)
    ref = np.load(out)
    for crop in (480, 448):
        pp = Preprocessing(512, crop)
        for path in paths:
            ours = pp.pixels(load_image(path).image)
            assert np.array_equal(ours, ref[f"{crop}/{path}"]), (crop, path.name)

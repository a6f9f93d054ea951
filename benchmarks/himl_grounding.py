"""Time hi-ml 0.2.2's own ``get_similarity_map_from_raw_data`` (the reference's grounding call).

Runs ONLY inside the reference virtualenv (``.venv-ref``, see tests/reference/README.md); ``benchmarks/grounding.py``
starts it as a subprocess when that virtualenv exists, right after timing ours on the same image and phrase. The
reference models are the generator's (real-size ResNet-50 + 12-layer BERT, seeded weights), built by its own code.

    .venv-ref/bin/python benchmarks/himl_grounding.py IMAGE PHRASE N [INTERPOLATION]
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _generator():  # the fixture generator defines the torchvision shim and the reference model builders
    spec = importlib.util.spec_from_file_location("generate_fixture", REPO / "tests/reference/generate_fixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    image, phrase, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    interpolation = sys.argv[4] if len(sys.argv) > 4 else "bilinear"
    with contextlib.redirect_stdout(io.StringIO()):
        gen = _generator()
        text_engine, _, _ = gen.build_text()
        image_engine, _ = gen.build_image("biovil")
    vlp = gen.ImageTextInferenceEngine(image_engine, text_engine)
    vlp.get_similarity_map_from_raw_data(image, phrase, interpolation=interpolation)  # warm-up
    times = []
    for _ in range(n):
        start = time.perf_counter()
        vlp.get_similarity_map_from_raw_data(image, phrase, interpolation=interpolation)
        times.append(time.perf_counter() - start)
    from importlib.metadata import version

    import torch

    print(json.dumps({"times_s": times, "torch_threads": torch.get_num_threads(),
                      "hi-ml-multimodal": version("hi-ml-multimodal"), "transformers": version("transformers")}))


if __name__ == "__main__":
    main()

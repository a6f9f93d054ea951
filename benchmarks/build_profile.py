"""Where a real-size build's non-model time goes, and the build path before / after this branch, interleaved.

Each round runs the whole job (``index.runner.run_build`` with the seeded real-size model, bf16, batch 1, one
decode worker, on ``n`` covid_chestxray items) once per variant, in alternating order, between two timings of the
image encoder alone; ratios are paired within the round and their medians reported, so the load that other jobs
put on the machine hits both variants alike.

* ``before``: the decoder this branch replaced (:func:`legacy_decode`: float tensor, uint8 round trip and an
  exactness check in torch, which also made every decode worker import torch) and no text pre-warm (the first
  chunk's texts embedded only at its commit); everything else as ``after``.
* ``after``: the current job (:func:`index.decode.decode_one`: the uint8 crop straight from PIL, no torch; the
  first chunk's texts embedded by :func:`index.embed.prewarm_texts` while the decode workers start).

Per job: wall time split by :class:`benchmarks.memory_phases.PhasedSampler` (start-up before the embed loop, the
embed loop, finalise steps), the manifest's stage timings (decode start-up and waits, image and text model), and
the rest of the embed loop (chunk commit, buffers). ``decode_ms_per_image`` times both decoders in this process.

    .venv/bin/python -m benchmarks.run --only build_profile
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxr_explorer.index.decode import Decoded, DecodeTask, Failed

from benchmarks.build import encoder_rate, whole_job_rate
from benchmarks.common import set_precision
from benchmarks.memory_phases import PhasedSampler

VARIANTS = ("before", "after")


def legacy_decode(task: DecodeTask) -> Decoded | Failed:
    """The decoder before this branch (kept here only to time it side by side): same output, via float tensors."""
    import torch
    from cxr_explorer.index.decode import thumbnail_jpeg
    from cxr_explorer.retrieval.inputs.images import ImageLoadError, load_image
    from cxr_explorer.retrieval.inputs.preprocess import Preprocessing

    try:
        loaded = load_image(task.abspath, name=task.label)
        tensor = Preprocessing(task.resize, task.crop)(loaded.image)
        gray = (tensor[0] * 255).round_().to(torch.uint8)
        exact = torch.equal(gray.to(torch.float32).div(255).expand_as(tensor), tensor)
        pixels = gray.numpy() if exact else tensor.numpy()
        return Decoded(pixels, thumbnail_jpeg(loaded.image), loaded.width, loaded.height, loaded.format)
    except ImageLoadError as exc:
        return Failed(exc.reason, exc.detail)


@contextlib.contextmanager
def variant(name: str) -> Iterator[None]:
    """Run the job as it was (``before``) or is (``after``)."""
    import cxr_explorer.index.decode as decode
    import cxr_explorer.index.runner as runner

    current = decode.decode_one, runner.prewarm_texts
    if name == "before":
        decode.decode_one = legacy_decode  # DecodePool's default decoder, pickled by reference to the workers
        runner.prewarm_texts = lambda *args, **kw: None  # texts embedded at the chunk's commit only
    try:
        yield
    finally:
        decode.decode_one, runner.prewarm_texts = current


def decode_ms(paths: list[Path], crop: int, resize: int) -> dict[str, float]:
    """Median ms per image of each decoder, in this process, interleaved per image."""
    from cxr_explorer.index.decode import decode_one

    times: dict[str, list[float]] = {"before": [], "after": []}
    for p in paths:
        task = DecodeTask(p.stem, str(p), p.name, resize, crop)
        for name, fn in (("before", legacy_decode), ("after", decode_one)):
            t0 = time.perf_counter()
            fn(task)
            times[name].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1000, 2) for k, v in times.items()}


def one_job(model: Any, corpus: Path, n: int, tmp: Path, tag: str, name: str) -> dict[str, Any]:
    """One whole job under ``variant(name)``: rate, overhead, manifest timings and phase seconds."""
    with variant(name), PhasedSampler() as sampler:
        rate, info = whole_job_rate(model, corpus, n, 1, 1, tmp, tag)
    t = info["timings"]
    phases = sampler.rounded_seconds()
    embed_loop = phases.get("embed_first_chunk", 0.0) + phases.get("embed_later_chunks", 0.0)
    accounted = sum(t.get(k, 0.0) for k in ("decode_startup_s", "decode_wait_s", "image_model_s", "text_model_s"))
    finalise = sum(v for k, v in phases.items() if k.startswith("finalise_") or k == "reopen_bundle")
    return {"items_per_s": rate, "wall_s": info["wall_s"], "build_overhead": info["build_overhead"],
            "startup_s": phases.get("startup", 0.0), "embed_loop_s": round(embed_loop, 3),
            **{k: t.get(k, 0.0) for k in ("decode_startup_s", "decode_wait_s", "image_model_s", "text_model_s")},
            "embed_loop_rest_s": round(embed_loop - accounted, 3), "finalise_s": round(finalise, 3),
            "finalise_phases_s": {k: v for k, v in phases.items() if k.startswith("finalise_") or k == "reopen_bundle"}}


def run_build_profile(model: Any, corpus: Path, paths: list[Path], tmp: Path, rounds: int = 3,
                      precision: str = "bf16", encoder_batches: int = 16) -> dict[str, Any]:
    """``rounds`` interleaved rounds of (encoder, before, after, encoder); medians and paired ratios."""
    set_precision(model, precision)
    n = len(paths)
    jobs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
    encoder: list[float] = []
    try:
        for r in range(rounds):
            before = encoder_rate(model, 1, encoder_batches)
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            row = {v: one_job(model, corpus, n, tmp, f"profile-{v}-{r}", v) for v in order}
            after = encoder_rate(model, 1, encoder_batches)
            ref = (before + after) / 2
            encoder += [before, after]
            for v in VARIANTS:
                jobs[v].append(row[v])
                ratios[v].append(row[v]["items_per_s"] / ref)
    finally:
        set_precision(model, "fp32")
    med = lambda xs: round(float(statistics.median(xs)), 3)  # noqa: E731
    out: dict[str, Any] = {"items": n, "precision": precision, "rounds": rounds, "batch": 1, "decode_workers": 1,
                           "encoder_images_per_s": med(encoder), "variants": {}}
    for v in VARIANTS:
        keys = [k for k, x in jobs[v][0].items() if isinstance(x, float | int)]
        out["variants"][v] = {**{k: med([j[k] for j in jobs[v]]) for k in keys}, "build_ratio": med(ratios[v]),
                              "build_ratio_runs": [round(x, 3) for x in ratios[v]],
                              "finalise_phases_s": jobs[v][-1]["finalise_phases_s"]}
    a, b = out["variants"]["after"], out["variants"]["before"]
    out["after_over_before"] = {"items_per_s": round(a["items_per_s"] / b["items_per_s"], 3),
                                "build_overhead": round(a["build_overhead"] / b["build_overhead"], 3)}
    out["decode_ms_per_image"] = decode_ms(paths, model.spec.crop, model.spec.resize)
    out["note"] = "see the module docstring for the variants; the machine's load at the start is in the results header"
    return out

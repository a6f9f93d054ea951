"""Issue-12 sections of ``benchmarks.run``: sentences, build_reports, precision, query_encode, growth, memory.

``sentences``, ``build_reports`` (covid images + IU reports, every covid image), ``query_encode``, ``memory``
(1k / 10k / 100k items) and ``app_scale`` (100k items) run by default (minutes); ``precision``, ``growth`` and
``build_profile`` run with ``--only`` or ``--full`` (minutes; ``--full`` adds real-crop 1k / 10k builds to
``memory``). Each writes ``res[<name>]`` and a markdown block (:func:`scale_markdown`).

    .venv/bin/python -m benchmarks.run --only sentences query_encode precision growth memory --out /tmp/scale.json
"""

from __future__ import annotations

import json
from typing import Any

SCALE_SECTIONS = ("sentences", "build_reports", "precision", "query_encode", "growth", "memory", "app_scale",
                  "build_profile")
DEFAULT_SCALE = ("sentences", "build_reports", "query_encode", "memory", "app_scale")


def run_scale_sections(res: dict[str, Any], model: Any, plan: Any, sections: set[str]) -> None:
    """Run the issue-12 sections named in ``sections`` into ``res`` (the smoke plan keeps them small)."""
    smoke = plan.model == "tiny-random"
    if "sentences" in sections:
        from benchmarks.sentences import run_sentences

        res["sentences"] = run_sentences(model.tokenizer, 300 if smoke else None)
    if "build_reports" in sections:
        _build_reports(res, model, plan, smoke)
    if "query_encode" in sections:
        from benchmarks.query_encode import run_query_encode

        res["query_encode"] = run_query_encode(model, rounds=3 if smoke else 15, graphs=not smoke)
    if "precision" in sections:
        from benchmarks.precision import run_precision

        res["precision"] = run_precision(model, 4 if smoke else 64, 10 if smoke else 200)
    if "growth" in sections:
        from benchmarks.growth import run_growth

        res["growth"] = run_growth(model, smoke, full=plan.sizes[-1] >= 1_000_000)
    if "memory" in sections:
        from benchmarks.memory import run_memory

        res["memory"] = run_memory(smoke, full=plan.sizes[-1] >= 1_000_000)
    if "build_profile" in sections:
        _build_profile(res, model, smoke)
    if "app_scale" in sections:
        from benchmarks.app_scale import run_app_scale

        res["app_scale"] = run_app_scale(300 if smoke else 100_000)  # issue 12: the app's RSS at 100k


def _build_reports(res: dict[str, Any], model: Any, plan: Any, smoke: bool) -> None:
    """The build_reports section: the whole job on covid images + IU report texts (every covid image; 4 in smoke)."""
    import tempfile
    from pathlib import Path

    from benchmarks.build_reports import COVID_IMAGES, missing_data, run_build_reports
    from benchmarks.run import image_paths

    missing = missing_data()
    if missing is not None:
        res["build_reports"] = {"status": f"skipped: {missing}"}
        return
    with tempfile.TemporaryDirectory() as tmp:
        res["build_reports"] = run_build_reports(model, image_paths(4 if smoke else COVID_IMAGES, Path(tmp)), Path(tmp),
                                                 plan.batch, plan.encoder_batches, plan.decode_workers,
                                                 rounds=1 if smoke else 2,
                                                 precisions=("fp32",) if smoke else ("bf16",))


def _build_profile(res: dict[str, Any], model: Any, smoke: bool) -> None:
    """The build_profile section on covid_chestxray (skipped with a note where ../shared is absent)."""
    import tempfile
    from pathlib import Path

    from benchmarks.build_profile import run_build_profile
    from benchmarks.run import SHARED_DATA, image_paths

    if not SHARED_DATA.is_dir():
        res["build_profile"] = {"status": "skipped: ../shared/data/covid_chestxray is absent"}
        return
    with tempfile.TemporaryDirectory() as tmp:
        res["build_profile"] = run_build_profile(model, SHARED_DATA, image_paths(4 if smoke else 48, Path(tmp)),
                                                 Path(tmp), rounds=1 if smoke else 3)


def scale_markdown(res: dict[str, Any]) -> list[str]:
    """Markdown blocks of the issue-12 sections present in ``res`` (their JSON, compactly)."""
    out: list[str] = []
    for name in SCALE_SECTIONS:
        if name in res:
            out += [f"## {name}", "", "```json", json.dumps(res[name], indent=1), "```", ""]
    return out

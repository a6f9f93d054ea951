"""``--precision auto``: bf16 where the hardware has native bf16, fp32 elsewhere; recorded; queries match or better."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cxr_explorer.index.runner import BuildConfig, run_build
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.engine.engine import Engine
from cxr_explorer.retrieval.models.precision import cpu_flags, native_bf16, query_precision, resolve_precision
from tests.helpers.corpora import write_good_csv

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n"
OLD = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"
CPU = torch.device("cpu")


def test_flags_decide_auto() -> None:
    assert "avx512_bf16" in cpu_flags(ZEN4) and cpu_flags("no flags here") == set()
    assert resolve_precision("auto", CPU, ZEN4) == resolve_precision("auto", CPU, SAPPHIRE) == "bf16"
    assert resolve_precision("auto", CPU, OLD) == "fp32"
    assert resolve_precision("fp32", CPU, ZEN4) == "fp32" and resolve_precision("bf16", CPU, OLD) == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", CPU)


def test_queries_use_the_bundle_precision_or_better() -> None:
    assert query_precision("bf16", CPU, ZEN4) == "bf16"
    assert query_precision("bf16", CPU, OLD) == "fp32"  # better than the bundle, and faster than emulated bf16
    assert query_precision("fp32", CPU, ZEN4) == "fp32"  # never worse than the bundle
    assert query_precision(None, CPU, ZEN4) == "fp32"


def _build(corpus: Path, out: Path, **kw: Any) -> Bundle:
    run_build(BuildConfig(corpus=corpus, out=out, model="tiny-random", workers=0, threads=1, progress="none", **kw))
    return Bundle.open(out)


def test_auto_is_resolved_recorded_and_kept_by_append(tmp_path: Path) -> None:
    corpus = write_good_csv(tmp_path, 3)
    auto = _build(corpus, tmp_path / "auto")
    assert auto.manifest["build"]["precision"] == resolve_precision("auto", CPU) == ("bf16" if native_bf16(CPU)
                                                                                    else "fp32")
    other = "fp32" if resolve_precision("auto", CPU) == "bf16" else "bf16"
    explicit = _build(corpus, tmp_path / "explicit", precision=other)
    assert explicit.manifest["build"]["precision"] == other
    more = write_good_csv(tmp_path, 2, name="more.csv", start=3)
    appended = _build(more, tmp_path / "explicit", append=True)  # auto keeps the bundle's precision
    assert appended.count == 5 and appended.manifest["build"]["precision"] == other
    engine = Engine.open(tmp_path / "explicit", device="cpu")
    assert engine.model.precision == query_precision(other, CPU)

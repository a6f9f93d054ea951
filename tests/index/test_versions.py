"""A running Engine holds version 1 while a concurrent ``cxr-explorer build --append`` (a real process) installs
version 2: the old Engine keeps answering from version 1 (same hits, vectors, metadata and patch rows), learns that
a newer version exists, a reopen gets version 2, and version 1 is removed by the next writer once it is closed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.cli import main
from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.engine.engine import Engine
from tests.helpers.corpora import write_good_csv
from tests.helpers.paths import REPO

FLAGS = ["--model", "tiny-random", "--workers", "0", "--threads", "1", "--progress", "none"]


def _answers(engine: Engine) -> tuple[list[tuple[str, float]], np.ndarray, list[str], np.ndarray]:
    hits = engine.search_text("effusion", k=10)
    b = engine.bundle
    return ([(h.id, round(h.score, 5)) for h in hits], np.array(b.vectors("images")), b.metadata["id"].tolist(),
            np.array(b.patches(), np.float32))


@pytest.mark.slow  # an append in a fresh process
def test_an_open_engine_keeps_its_version_during_a_concurrent_append(tmp_path: Path, build, tiny_model) -> None:
    first = write_good_csv(tmp_path, 4, "first.csv")
    out = tmp_path / "b"
    build(first, out)
    bigger = write_good_csv(tmp_path, 9, "bigger.csv")
    engine = Engine.open(out, model=tiny_model)
    before = _answers(engine)
    assert engine.bundle.version == 1 and len(before[2]) == 4
    proc = subprocess.Popen([sys.executable, "-m", "cxr_explorer", "build", str(bigger), "--out", str(out),
                             "--append", "--chunk-size", "2", *FLAGS], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    polls = 0
    while proc.poll() is None or polls == 0:  # queries while the append runs and installs
        now = _answers(engine)
        assert now[0] == before[0] and now[2] == before[2]
        np.testing.assert_array_equal(now[1], before[1])
        np.testing.assert_array_equal(now[3], before[3])
        polls += 1
    out_text, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "appended: 9 items" in out_text
    assert engine.bundle.newer_version_available()
    after = _answers(engine)
    assert after[0] == before[0] and after[2] == before[2]  # still version 1
    assert store.versions.listed(out) == [1, 2]  # held by the open engine: not removed
    fresh = Engine.open(out, model=tiny_model)
    assert fresh.bundle.version == 2 and fresh.bundle.count == 9 and not fresh.bundle.newer_version_available()
    assert fresh.bundle.metadata["id"].tolist()[:4] == before[2]
    engine.bundle.close()
    assert main(["build", str(bigger), "--out", str(out), "--append", *FLAGS]) == 0  # the next writer: complete
    assert store.versions.listed(out) == [2]
    assert fresh.search_text("effusion", k=3)[0].id in fresh.bundle.metadata["id"].tolist()

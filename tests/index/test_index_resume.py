"""Crash safety: ``kill -9`` during a build, or a crash during finalisation, then the same command = exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cxr_explorer.cli import main
from index.chunks import BuildStateError
from retrieval import bundle_io
from retrieval.bundle import Bundle, BundleError
from tests.helpers.corpora import write_good_csv


def assert_same_bundle(a: Path, b: Path) -> None:
    """Same ids exactly once, same image/report vectors and patches per id."""
    x, y = Bundle.open(a), Bundle.open(b)
    assert x.metadata["id"].is_unique and y.metadata["id"].is_unique
    assert sorted(x.metadata["id"]) == sorted(y.metadata["id"])
    order = [y.row_of(i) for i in x.metadata["id"]]
    np.testing.assert_allclose(x.vectors("images"), y.vectors("images")[order], atol=1e-5)
    np.testing.assert_allclose(np.asarray(x.patches(), np.float32), np.asarray(y.patches()[order], np.float32),
                               atol=2e-3)
    rep = {int(r): v for r, v in zip(y.ids("reports"), y.vectors("reports"), strict=True)}
    for r, v in zip(x.ids("reports"), x.vectors("reports"), strict=True):
        np.testing.assert_allclose(v, rep[order[int(r)]], atol=1e-5)
    assert len(x.sentences) == len(y.sentences) and len(x.skipped) == len(y.skipped)


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_then_same_command(tmp_path: Path, build) -> None:  # noqa: F811
    corpus = write_good_csv(tmp_path, 12)
    (tmp_path / "images" / "img3.png").write_bytes(b"broken")  # a skipped item must also be counted once
    out = tmp_path / "killed"
    argv = ["build", str(corpus), "--out", str(out), "--model", "tiny-random", "--chunk-size", "2", "--workers", "1",
            "--threads", "1", "--precision", "fp32",  # as the in-process reference build below
            "--progress", "none", "--debug-chunk-delay", "0.5"]
    proc = subprocess.Popen([sys.executable, "-m", "cxr_explorer", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    first = out / "chunks" / "000000"
    deadline = time.monotonic() + 240
    while not first.is_dir():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "no chunk committed in time"
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers, "the build should have decode worker processes"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "decode workers outlived the killed build"
    assert not (out / "manifest.json").exists()
    with pytest.raises(BundleError, match="unfinished"):
        Bundle.open(out)
    assert main(argv[:-2]) == 0  # the same command (without the test-only delay) finishes the job
    build(corpus, tmp_path / "clean")
    assert_same_bundle(out, tmp_path / "clean")
    b = Bundle.open(out)
    assert b.count == 11 and [s["reason"] for s in b.skipped] == ["not-an-image"]
    assert not (out / "chunks").exists()


@pytest.mark.parametrize("crash_after", [0, 1, 9, -1])  # -1: every file moved (manifest too), chunks not retired
def test_crash_during_finalisation(tmp_path: Path, build, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                   crash_after: int) -> None:
    corpus = write_good_csv(tmp_path, 5)
    out = tmp_path / "b"
    real_replace, real_rename, calls = os.replace, os.rename, {"n": 0}

    def flaky(fn):  # type: ignore[no-untyped-def]
        def wrapped(*args):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] > max(crash_after, 0):
                raise KeyboardInterrupt("simulated kill")
            return fn(*args)
        return wrapped

    def crash_in_install(root: Path) -> bool:
        if not (root / "_ready").exists():
            return real_install(root)
        if crash_after < 0:
            calls["n"] = -sum(1 for p in (root / "_ready").iterdir() if p.is_file())
        monkeypatch.setattr(bundle_io.os, "replace", flaky(real_replace))
        monkeypatch.setattr(bundle_io.os, "rename", flaky(real_rename))
        return real_install(root)

    real_install = bundle_io.install_ready
    monkeypatch.setattr(bundle_io, "install_ready", crash_in_install)
    with pytest.raises(KeyboardInterrupt):
        build(corpus, out, chunk_size=2)
    monkeypatch.undo()
    if crash_after < 0:
        assert (out / "manifest.json").exists() and (out / "chunks").exists() and (out / "_ready").exists()
    build(corpus, out, chunk_size=2)
    build(corpus, tmp_path / "clean")
    assert_same_bundle(out, tmp_path / "clean")


def test_crash_while_staging(tmp_path: Path, build, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    corpus = write_good_csv(tmp_path, 4)
    out = tmp_path / "b"

    def boom(*args: object) -> None:
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(bundle_io, "file_checksums", boom)
    with pytest.raises(KeyboardInterrupt):
        build(corpus, out, chunk_size=3)
    monkeypatch.undo()
    assert (out / "_staging").exists() and (out / "chunks").exists()
    summary = build(corpus, out, chunk_size=3)
    assert summary.status == "built" and summary.indexed_now == 0 and summary.count == 4
    assert not (out / "_staging").exists()


def test_rerun_complete_and_refusals(tmp_path: Path, build) -> None:  # noqa: F811
    corpus = write_good_csv(tmp_path, 3)
    out = tmp_path / "b"
    build(corpus, out)
    assert build(corpus, out).status == "complete"
    with pytest.raises(BuildStateError, match="model='tiny-random'.*model='biovil'"):
        from index.runner import BuildConfig, run_build

        run_build(BuildConfig(corpus=corpus, out=out, model="biovil", progress="none"))
    bigger = write_good_csv(tmp_path, 5, "bigger.csv")
    with pytest.raises(BundleError, match="2 items it does not hold; pass --append"):
        build(bigger, out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(BundleError, match="not empty and is not a bundle"):
        build(corpus, tmp_path / "other")

"""A real ``kill -9`` at every step of a build, an append and a merge (armed from the test side by
``tests.helpers.killpoint``), then the same command: every corpus item ends up exactly once, with the vectors of a
clean build. Also a full disk: one line, exit 1, and the same command finishes after space is back."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cxr_explorer.cli import main
from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.bundle.reader import Bundle
from tests.helpers.corpora import assert_same_bundle, write_good_csv
from tests.helpers.paths import REPO
from tests.helpers.processes import alive, children

pytestmark = pytest.mark.slow  # every test runs a build in a fresh process and kills it

FLAGS = ["--model", "tiny-random", "--chunk-size", "2", "--workers", "0", "--threads", "1", "--precision", "fp32",
         "--progress", "none"]


def killpoint(step: str, n: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``cxr-explorer ARGV`` in a new process armed to die (or meet a full disk) at ``step`` the n-th time."""
    return subprocess.run([sys.executable, "-m", "tests.helpers.killpoint", step, str(n), "--", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory,  # type: ignore[no-untyped-def]
           tiny_model) -> tuple[Path, Path]:
    """A 7-row corpus (one unreadable image) and its clean single-process build."""
    from cxr_explorer.index.runner import BuildConfig, run_build

    root = tmp_path_factory.mktemp("crash")
    csv = write_good_csv(root, 7)
    (root / "images" / "img3.png").write_bytes(b"broken")
    clean = root / "clean"
    run_build(BuildConfig(corpus=csv, out=clean, model="tiny-random", workers=0, threads=1, progress="none",
                          precision="fp32"), model=tiny_model)
    return csv, clean


def _exactly_once(out: Path, clean: Path) -> None:
    assert_same_bundle(out, clean)
    with Bundle.open(out) as b:
        assert b.count == 6 and [s["reason"] for s in b.skipped] == ["not-an-image"]
        assert not store.BuildArea(out).exists(), "the build area outlived the install"
        assert store.versions.listed(out) == [b.version], "an orphan or old version was left behind"


@pytest.mark.parametrize(("step", "n"), [("chunk-write", 1), ("chunk-write", 2), ("chunk-commit", 1),
                                         ("chunk-commit", 3), ("finalise", 1), ("finalise", 3), ("install", 1),
                                         ("after-install", 1)])
def test_kill_9_during_build_then_same_command(tmp_path: Path, corpus: tuple[Path, Path], step: str,
                                                n: int) -> None:
    csv, clean = corpus
    out = tmp_path / "b"
    argv = ["build", str(csv), "--out", str(out), *FLAGS]
    run = killpoint(step, n, argv)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    if step == "after-install":
        assert store.current_version(out) == 1 and store.BuildArea(out).exists()
    else:
        assert store.current_version(out) is None
        with pytest.raises(Exception, match="unfinished"):
            Bundle.open(out)
    assert main(argv) == 0
    _exactly_once(out, clean)


def test_kill_9_leaves_no_decode_worker(tmp_path: Path, corpus: tuple[Path, Path]) -> None:
    csv, clean = corpus
    out = tmp_path / "b"
    argv = ["build", str(csv), "--out", str(out), *FLAGS]
    argv[argv.index("--workers") + 1] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.killpoint", "chunk-commit", "2", "--", *argv],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: set[int] = set()
    while proc.poll() is None:
        workers.update(children(proc.pid))
    assert proc.returncode == -signal.SIGKILL
    assert workers, "the build should have had a decode worker process"
    import time
    deadline = time.monotonic() + 30
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(w) for w in workers), "decode workers outlived the killed build"
    assert main(argv) == 0
    _exactly_once(out, clean)


@pytest.mark.parametrize(("step", "n"), [("chunk-commit", 1), ("finalise", 2), ("install", 1), ("after-install", 1)])
def test_kill_9_during_append_then_same_command(tmp_path: Path, corpus: tuple[Path, Path], build,
                                                step: str, n: int) -> None:
    csv, clean = corpus
    out = tmp_path / "b"
    first = write_good_csv(tmp_path, 3, "first.csv")  # ids images/img0..2: the corpus's first rows, same pixels
    build(first, out, precision="fp32")
    argv = ["build", str(csv), "--out", str(out), "--append", *FLAGS]
    run = killpoint(step, n, argv)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert store.current_version(out) == (2 if step == "after-install" else 1)
    assert main(argv) == 0
    assert_same_bundle(out, clean)
    with Bundle.open(out) as b:
        assert b.version == 2 and not store.BuildArea(out).exists()


@pytest.mark.parametrize(("step", "n"), [("finalise", 1), ("install", 1), ("after-install", 1)])
def test_kill_9_during_merge_then_same_command(tmp_path: Path, corpus: tuple[Path, Path], build,
                                               step: str, n: int) -> None:
    csv, clean = corpus
    for i in range(2):
        build(csv, tmp_path / f"s{i}", shard=(i, 2), precision="fp32")
    out = tmp_path / "all"
    argv = ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(out)]
    run = killpoint(step, n, argv)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert main(argv) == 0
    _exactly_once(out, clean)


@pytest.mark.parametrize(("step", "n"), [("disk-full", 1), ("disk-full", 5), ("enospc", 2), ("enospc", 22)])
def test_full_disk_is_one_line_and_resumable(tmp_path: Path, corpus: tuple[Path, Path], step: str, n: int) -> None:
    csv, clean = corpus
    out = tmp_path / "b"
    argv = ["build", str(csv), "--out", str(out), *FLAGS]
    run = killpoint(step, n, argv)
    assert run.returncode == 1, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cxr-explorer: error: not enough disk space in {out}:"), run.stderr[-2000:]
    assert "rerun the same command" in last and "Traceback" not in run.stderr
    assert store.current_version(out) is None
    assert main(argv) == 0
    _exactly_once(out, clean)


def test_a_second_writer_on_the_same_out_is_refused_in_one_line(tmp_path: Path, corpus: tuple[Path, Path]) -> None:
    """Two real processes: a build holding the folder (paused after its first chunk), then a build, an append and a
    merge into the same --out: each refused at once with one line naming the holder; after kill -9 the same
    command finishes the build."""
    csv, clean = corpus
    out = tmp_path / "b"
    argv = ["build", str(csv), "--out", str(out), *FLAGS]
    first = subprocess.Popen([sys.executable, "-m", "tests.helpers.killpoint", "hold", "1", "--", *argv], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "HOLDING"
        for other in (argv, [*argv, "--append"], ["merge", str(clean), "--out", str(out)]):
            run = subprocess.run([sys.executable, "-m", "cxr_explorer", *other], cwd=REPO, capture_output=True,
                                 text=True, timeout=300)
            lines = [line for line in run.stderr.strip().splitlines() if " WARNING " not in line]
            assert run.returncode == 2 and len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
            assert lines[0].startswith(f"cxr-explorer: error: {out} is being written by another job (pid {first.pid}")
            assert "build" in lines[0] and "started" in lines[0]
    finally:
        first.kill()
        first.wait()
    assert main(argv) == 0
    _exactly_once(out, clean)

"""Decode stage: exact model input, thumbnails, ordered bounded streaming, surviving a crashing decoder."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxr_explorer.index.decode import Decoded, DecodePool, DecodeTask, Failed, decode_one, to_model_input
from cxr_explorer.retrieval.inputs.images import load_image
from cxr_explorer.retrieval.inputs.preprocess import Preprocessing
from tests.helpers.corpora import png_bytes


def task(path: Path, crop: int = 480) -> DecodeTask:
    return DecodeTask(path.name, str(path), path.name, 512, crop)


@pytest.mark.parametrize("size", [(64, 48), (700, 300), (20, 900)])
def test_model_input_is_bit_identical(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(1, size))
    result = decode_one(task(path))
    assert isinstance(result, Decoded) and result.pixels.dtype == np.uint8
    expected = Preprocessing(512, 480)(load_image(path).image)
    assert torch.equal(to_model_input([result.pixels])[0], expected)
    thumb = Image.open(io.BytesIO(result.thumbnail))
    assert thumb.format == "JPEG" and max(thumb.size) <= 256 and thumb.mode == "L"
    assert (result.width, result.height) == size


def test_bad_file_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("not an image")
    result = decode_one(task(tmp_path / "x.png"))
    assert isinstance(result, Failed) and result.reason == "not-an-image"
    assert decode_one(task(tmp_path / "none.png")) == Failed("missing", "file does not exist")


def crashy(t: DecodeTask) -> Decoded | Failed:
    """Kills its worker process for files named crash*, like a native decoder crash would."""
    if t.id.startswith("crash"):
        os._exit(1)
    return decode_one(t)


@pytest.mark.slow  # starts decode worker processes (and restarts crashed ones)
def test_pool_keeps_order_and_survives_a_crash(tmp_path: Path) -> None:
    names = ["crash0.png", "a.png", "b.png", "crash1.png", "c.png", "d.png", "e.png"]
    for k, name in enumerate(names):
        (tmp_path / name).write_bytes(png_bytes(k))
    tasks = [task(tmp_path / n, crop=64) for n in names]
    with DecodePool(workers=2, prefetch=3, fn=crashy) as pool:
        results = list(pool.stream(tasks))
    assert [t.id for t, _ in results] == names
    kinds = [type(r).__name__ for _, r in results]
    assert kinds == ["Failed", "Decoded", "Decoded", "Failed", "Decoded", "Decoded", "Decoded"]
    first, fourth, third = results[0][1], results[3][1], results[2][1]
    assert isinstance(first, Failed) and isinstance(fourth, Failed) and isinstance(third, Decoded)
    assert first.reason == fourth.reason == "decoder-crash"
    inline = list(DecodePool(workers=0, prefetch=1).stream(tasks[1:3]))
    second_inline = inline[1][1]
    assert isinstance(second_inline, Decoded)
    assert np.array_equal(second_inline.pixels, third.pixels)


def test_pool_ignores_a_replaced_main_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts such as Streamlit replace ``__main__``; spawned decoders must not re-run that script."""
    import sys
    import types

    script = tmp_path / "host_script.py"
    script.write_text("raise SystemExit('a decoder imported the host script')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(1))
    with DecodePool(1, prefetch=2) as pool:
        results = [r for _, r in pool.stream([task(path)])]
    assert isinstance(results[0], Decoded)
    assert sys.modules["__main__"] is fake_main


@pytest.mark.slow  # starts decode worker processes (and restarts crashed ones)
def test_workers_that_cannot_start_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cxr_explorer.index.decode as decode
    from tests.helpers.corpora import dying_initializer

    monkeypatch.setattr(decode, "_init_worker", dying_initializer)
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(1))
    with DecodePool(1, prefetch=2) as pool, pytest.raises(decode.DecodeWorkersError, match="start-up"):
        list(pool.stream([task(path)]))


def test_sigint_is_blocked_only_while_a_submit_may_spawn_a_worker(tmp_path: Path) -> None:
    """Children must be born deaf to Ctrl-C (SIGINT blocked in the thread that spawns them), but once the pool holds
    its workers a submit must leave SIGINT alone; and the workers it started have SIGINT blocked."""
    import signal

    def mask() -> set[int]:
        return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    seen: list[bool] = []
    with DecodePool(workers=2, prefetch=2) as pool:
        assert pool._may_spawn()
        executor = pool._pool()
        real = executor.submit

        def spy(fn, *args):  # type: ignore[no-untyped-def]
            seen.append(signal.SIGINT in mask())  # blocked while the submit runs?
            return real(fn, *args)

        executor.submit = spy  # type: ignore[method-assign,assignment]
        pool.start()
        assert not pool._may_spawn()
        pids = pool._submit_now(os.getpid).result(timeout=60), pool._submit_now(os.getpid).result(timeout=60)
        for pid in set(pids):
            blocked = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                               if line.startswith("SigBlk:")).split()[1], 16)
            assert blocked >> (signal.SIGINT - 1) & 1, f"worker {pid} would take Ctrl-C"
    assert seen == [True, True, False, False]
    assert signal.SIGINT not in mask()


def test_a_ctrl_c_during_a_spawn_is_held_not_lost() -> None:
    import signal
    import threading

    import cxr_explorer.index.decode as decode

    got: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda *_: got.append(1))
    try:
        with decode._children_ignore_sigint():
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            during = list(got)
        for _ in range(100):  # the handler runs at the main thread's next check, right after the block
            if got:
                break
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert during == [] and got == [1]


@pytest.mark.slow  # starts a parent process per step and kills it
@pytest.mark.parametrize("step", ["import", "init", "idle", "decode"])
def test_a_worker_dies_with_its_parent_at_every_start_up_step(tmp_path: Path, step: str) -> None:
    """SIGKILL of the parent while its decode worker is at ``step`` (tests.helpers.startup holds it there, then lets
    it go on): the worker and the resource tracker end, and nobody warns about leaked semaphores (the tracker
    cleaned them)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers.paths import REPO
    from tests.helpers.processes import alive, children

    marker = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-m", "tests.helpers.startup", step, str(marker)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text():
        if parent.poll() is not None or time.monotonic() > deadline:
            parent.kill()  # the test's own process: never left behind
            pytest.fail(f"the worker never reached {step}")
        time.sleep(0.05)
    worker = int(marker.read_text())
    family = {worker, *children(parent.pid)}  # the worker and the resource tracker
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    (tmp_path / "worker.pid.go").touch()  # the worker goes on with its start-up, its parent gone
    deadline = time.monotonic() + 30
    while any(alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in family if alive(p)]
    for pid in left:  # the test's own processes: do not leave them behind when it fails
        os.kill(pid, signal.SIGKILL)
    stderr = parent.stderr.read() if parent.stderr is not None else ""
    assert not left, f"outlived their parent killed at {step}: {left}"
    assert "leaked" not in stderr, stderr

"""Decode + preprocess stage: worker processes turn image files into model input and a thumbnail.

Results stream back in corpus order with a bounded number in flight, so decoding overlaps the model without
holding more than ``prefetch`` decoded images. A decoder that kills its worker process (e.g. a native crash on a
hostile file) costs only that file: the in-flight files are retried one at a time and the culprit is skipped.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing as mp
import os
import signal
import sys
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
THUMB_SIDE = 256
THUMB_QUALITY = 85


@dataclass(frozen=True)
class DecodeTask:
    """One file to decode; ``label`` names it in messages (the corpus path)."""

    id: str
    abspath: str
    label: str
    resize: int
    crop: int


@dataclass(frozen=True)
class Decoded:
    """``pixels``: [crop, crop] uint8 (the model input is pixels / 255 on 3 channels) or [3, crop, crop] float32."""

    pixels: np.ndarray
    thumbnail: bytes
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class Failed:
    """Why a file was skipped: ``reason`` is a short tag (retrieval.inputs.images.REASONS or decoder-crash/-error)."""

    reason: str
    detail: str


def _exit_with_parent(alive: Connection) -> None:
    """Daemon-thread loop: end this worker when its parent is gone (e.g. the build was ``kill -9``-ed), instead of
    lingering as an orphan that holds memory forever. ``alive`` is the read end of a pipe whose only write end the
    parent holds: the read returns EOF once the parent has died, whenever that was."""
    import os

    with contextlib.suppress(EOFError, OSError):
        while True:
            alive.recv_bytes()
    os._exit(0)


def _init_worker(parent: int, alive: Connection) -> None:
    """Decode workers use one thread each; the model owns the rest of the machine. They exit with their parent:
    ``parent`` is its pid as the parent saw it before the spawn (a worker whose parent died while it started sees
    another parent) and ``alive`` the liveness pipe (:func:`_exit_with_parent`).

    The default decoder never imports torch (a worker starts in a fraction of a second instead of seconds); the
    thread variables cap a custom decoder that does."""
    import os
    import threading

    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=_exit_with_parent, args=(alive,), daemon=True).start()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (once per process) with its shutdown warning off.

    The tracker removes the pool's semaphores when the last process that holds them is gone; after a ``kill -9`` of
    the build it does exactly that and warns "There appear to be N leaked semaphore objects to clean up at
    shutdown": a cleanup that worked, printed as a fault. Its warning filters are the command-line ``-W`` options it
    is started with, taken from ``sys.warnoptions``."""
    from multiprocessing import resource_tracker

    quiet = "ignore:resource_tracker:UserWarning"
    added = quiet not in sys.warnoptions
    if added:
        sys.warnoptions.append(quiet)
    try:
        resource_tracker.ensure_running()
    finally:
        if added:
            sys.warnoptions.remove(quiet)


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Worker processes started inside this block are born with SIGINT blocked (the spawning thread's signal mask
    survives fork and exec, and Python leaves it as it is), so Ctrl-C, which the terminal sends to the whole process
    group, reaches only the parent: it stops the pool and prints one line, not a traceback per worker. In the parent
    a Ctrl-C during the spawn is held, not lost: it is delivered when the block ends (or at once, to another thread,
    whose handler call the main thread then runs)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _noop() -> None:
    """Submitted once per worker by :meth:`DecodePool.start` to make it spawn."""


def thumbnail_jpeg(image) -> bytes:  # type: ignore[no-untyped-def]
    """PIL "L" image -> JPEG bytes, longest side <= THUMB_SIDE."""
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=THUMB_QUALITY)
    return buf.getvalue()


def decode_one(task: DecodeTask) -> Decoded | Failed:
    """Load, preprocess (uint8 crop, no torch) and thumbnail one file; never raises for bad input."""
    from cxr_explorer.retrieval.inputs.images import ImageLoadError, load_image
    from cxr_explorer.retrieval.inputs.preprocess import Preprocessing

    try:
        loaded = load_image(task.abspath, name=task.label)
        pixels = Preprocessing(task.resize, task.crop).pixels(loaded.image)
        return Decoded(pixels, thumbnail_jpeg(loaded.image), loaded.width, loaded.height, loaded.format)
    except ImageLoadError as exc:
        return Failed(exc.reason, exc.detail)
    except MemoryError:
        return Failed("decode-error", "out of memory while decoding")
    except Exception as exc:  # a decoder bug must not stop a 300k-image job
        return Failed("decode-error", f"{type(exc).__name__}: {str(exc)[:200]}")


def to_model_input(pixels: list[np.ndarray], device: Any = "cpu"):  # type: ignore[no-untyped-def]
    """Decoded pixels -> float32 tensor [B, 3, crop, crop] on ``device``, bit-identical to ``Preprocessing``.

    uint8 grayscale crops travel to the device as bytes and become floats there (4x less host memory traffic).
    """
    import torch

    if all(p.dtype == np.uint8 for p in pixels):
        gray = torch.from_numpy(np.stack(pixels)).to(device, non_blocking=True)
        return gray.to(torch.float32).div(255).unsqueeze(1).expand(-1, 3, -1, -1)
    out = [torch.from_numpy(p).to(torch.float32).div(255).unsqueeze(0).expand(3, -1, -1) if p.dtype == np.uint8
           else torch.from_numpy(p) for p in pixels]
    return torch.stack(out).to(device)


class DecodeWorkersError(RuntimeError):
    """Decode worker processes die on start-up, whatever the file: an environment problem, not a bad image."""


@contextlib.contextmanager
def _neutral_main() -> Iterator[None]:
    """Hide the parent's ``__main__`` while a worker process starts.

    A spawned child re-imports the parent's main module. Hosts that replace ``__main__`` (Streamlit's AppTest and
    script runner, notebooks, ``python - <<EOF``) would make every worker die on start-up; the workers only need
    importable module-level functions, never the parent's script.
    """
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


class _SpawnProcess(mp.get_context("spawn").Process):  # type: ignore[misc,name-defined]
    def start(self) -> None:
        with _neutral_main():
            super().start()


class _SpawnContext(type(mp.get_context("spawn"))):  # type: ignore[misc]
    Process = _SpawnProcess


class DecodePool:
    """Ordered, bounded decoding in ``workers`` spawned processes (``workers=0``: in this process)."""

    def __init__(self, workers: int, prefetch: int, fn: Callable[[DecodeTask], Decoded | Failed] | None = None
                 ) -> None:
        self.workers = workers
        self.prefetch = max(1, prefetch)
        self.fn = fn or decode_one  # a module-level function (pickled to the workers)
        self._executor: ProcessPoolExecutor | None = None
        self._alive: tuple[Connection, Connection] | None = None  # (read end for the workers, write end kept here)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Spawn the workers now (they import torch for seconds), e.g. while the model loads."""
        if self.workers > 0:
            for _ in range(self.workers):
                self._submit_now(_noop)

    def close(self) -> None:
        """Stop the workers (pending work is cancelled)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._alive is not None:
            for end in self._alive:
                end.close()
            self._alive = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            if self._alive is None:
                self._alive = mp.Pipe(duplex=False)
            _start_resource_tracker()
            self._executor = ProcessPoolExecutor(self.workers, mp_context=_SpawnContext(), initializer=_init_worker,
                                                 initargs=(os.getpid(), self._alive[0]))
        return self._executor

    def _restart(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def _may_spawn(self) -> bool:
        """Whether the next submit may start a worker: the pool spawns on demand until it holds ``workers``."""
        processes = getattr(self._executor, "_processes", None)
        return self._executor is None or processes is None or len(processes) < self.workers

    def _submit_now(self, fn: Callable[..., Any], *args: Any) -> Future:
        """``executor.submit``; one that may spawn a worker runs with SIGINT blocked (see above), and only that one,
        so the workers it starts never see Ctrl-C. The pool is made first: starting multiprocessing's resource
        tracker unblocks SIGINT on its way out."""
        pool = self._pool()
        if not self._may_spawn():
            return pool.submit(fn, *args)
        with _children_ignore_sigint():
            return pool.submit(fn, *args)

    def _submit(self, task: DecodeTask) -> Future:
        """Submit a task; a pool that broke meanwhile yields a future holding BrokenProcessPool (handled in order)."""
        try:
            return self._submit_now(self.fn, task)
        except BrokenProcessPool as exc:
            future: Future = Future()
            future.set_exception(exc)
            return future

    def _isolated(self, task: DecodeTask) -> Decoded | Failed:
        """Decode one task alone after a worker crash; a second crash pins the blame on this file."""
        try:
            return self._submit_now(self.fn, task).result()
        except BrokenProcessPool:
            self._restart()
            if not self._workers_start():
                raise DecodeWorkersError("decode worker processes die on start-up, before any file is read; check "
                                         "that this Python can start subprocesses (`--workers 0` decodes in-process)"
                                         ) from None
            log.warning("decoding %s crashed a worker process; skipping it", task.label)
            return Failed("decoder-crash", "decoding this file crashed the decoder process")

    def _workers_start(self) -> bool:
        """True if a fresh worker can run a no-op: tells a bad file from a pool that cannot work at all."""
        try:
            self._submit_now(_noop).result(timeout=300)
            return True
        except BrokenProcessPool:
            self._restart()
            return False

    def stream(self, tasks: Iterable[DecodeTask]) -> Iterator[tuple[DecodeTask, Decoded | Failed]]:
        """(task, result) in task order, keeping at most ``prefetch`` tasks in flight. With workers, the first
        ``prefetch`` tasks are submitted now, before the first result is asked for, so the caller can do other work
        (e.g. text embedding) while the workers start and decode."""
        if self.workers <= 0:
            return ((task, self.fn(task)) for task in tasks)
        source = iter(tasks)
        window: deque[tuple[DecodeTask, Future]] = deque()
        self._fill(window, source)
        return self._drain(window, source)

    def _fill(self, window: deque[tuple[DecodeTask, Future]], source: Iterator[DecodeTask]) -> None:
        while len(window) < self.prefetch:
            nxt = next(source, None)
            if nxt is None:
                break
            window.append((nxt, self._submit(nxt)))

    def _drain(self, window: deque[tuple[DecodeTask, Future]], source: Iterator[DecodeTask]
               ) -> Iterator[tuple[DecodeTask, Decoded | Failed]]:
        while True:
            self._fill(window, source)
            if not window:
                return
            task, future = window.popleft()
            try:
                result = future.result()
            except BrokenProcessPool:
                stalled = [task, *(t for t, _ in window)]
                window.clear()
                self._restart()
                for t in stalled:
                    yield t, self._isolated(t)
                continue
            yield task, result

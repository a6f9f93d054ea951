"""Run one ``cxr-explorer`` command in this process and kill it with SIGKILL at a named step (test side only).

    python -m tests.helpers.killpoint STEP N -- build CORPUS --out DIR ...

patches a function of the store or the index job in this process (production never sets or reads anything for
this), so that the N-th time STEP happens the process SIGKILLs itself: a real ``kill -9`` at an exact moment.
Steps that fail instead of killing (``enospc``, ``disk-full``) make the command meet a full disk.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

STEPS = ("hold", "chunk-write", "chunk-commit", "finalise", "install", "after-install", "temporal", "enospc",
         "disk-full")


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class _Counter:
    """Calls ``on_nth`` instead of (or after) the patched function the N-th time it is called."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def hit(self) -> bool:
        self.calls += 1
        return self.calls == self.n


def _wrap(module: Any, name: str, n: int, before: Callable[..., None] | None = None,
          after: Callable[[], None] | None = None) -> None:
    real, counter = getattr(module, name), _Counter(n)

    def patched(*args: Any, **kwargs: Any) -> Any:
        nth = counter.hit()
        if nth and before is not None:
            before(*args, **kwargs)
        out = real(*args, **kwargs)
        if nth and after is not None:
            after()
        return out

    setattr(module, name, patched)


def _half_patches(path: Any, parts: Any, shape: tuple[int, ...]) -> None:
    """Write the header and half of the patch bytes of a chunk's patches.npy, then die."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False, "shape": shape}
    data = b"".join(np.ascontiguousarray(p.patches, dtype=np.float16).tobytes() for p in parts)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(data[: len(data) // 2])
        fh.flush()
        os.fsync(fh.fileno())
    _die()


def _raise_enospc(*_: Any, **__: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _enospc_on(counter: _Counter, real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, raising ENOSPC instead when ``counter`` (shared by several writers) reaches its N-th call."""
    def patched(*args: Any, **kwargs: Any) -> Any:
        if counter.hit():
            _raise_enospc()
        return real(*args, **kwargs)
    return patched


def install(step: str, n: int) -> None:
    """Arm ``step`` to fire the ``n``-th time it happens."""
    from cxr_explorer.index import temporal
    from cxr_explorer.retrieval.bundle import writer
    from cxr_explorer.retrieval.bundle.store import build_area, parts, space, versions

    if step == "hold":  # after the n-th chunk commit: say so on stdout and wait (holding the writer lock)
        def hold() -> None:
            print("HOLDING", flush=True)
            import time
            time.sleep(600)
        _wrap(build_area, "commit_chunk", n, after=hold)
    elif step == "chunk-write":  # the n-th chunk write dies halfway through its patches file
        real_write_parts, counter = build_area.write_parts, _Counter(n)

        def write_parts(*args: Any, **kwargs: Any) -> Any:
            if counter.hit():
                parts._write_patches = _half_patches  # type: ignore[assignment]
            return real_write_parts(*args, **kwargs)

        build_area.write_parts = write_parts  # type: ignore[assignment]
    elif step == "chunk-commit":  # right after the n-th chunk is renamed into place, before anything else
        _wrap(build_area, "commit_chunk", n, after=_die)
    elif step == "finalise":  # staging: data files written, the n-th FAISS index being built
        _wrap(writer, "build_index", n, before=lambda *a, **k: _die())
    elif step == "install":  # renamed to versions/N, CURRENT not yet flipped
        _wrap(versions, "write_current", n, before=lambda *a, **k: _die())
    elif step == "after-install":  # CURRENT flipped, build area (chunks) not yet retired
        _wrap(versions, "retire_build_area", n, before=lambda *a, **k: _die())
    elif step == "temporal":  # after the n-th temporal chunk (of one pair each here) is committed
        temporal.CHUNK_PAIRS = 1
        _wrap(temporal, "_commit_chunk", n, after=_die)
    elif step == "enospc":  # the n-th .npy write of the store (whole array or streamed vectors) meets a full disk
        counter = _Counter(n)
        for name in ("_save_npy", "_write_rows"):
            setattr(parts, name, _enospc_on(counter, getattr(parts, name)))
    elif step == "disk-full":  # from the n-th free-space check on, the disk reports 1 MB free
        real_usage, counter = space.shutil.disk_usage, _Counter(n)

        def disk_usage(path: Any) -> Any:
            usage = real_usage(path)
            counter.calls += 1
            return usage._replace(free=1_000_000) if counter.calls >= counter.n else usage

        space.shutil.disk_usage = disk_usage  # type: ignore[assignment]
    else:
        raise SystemExit(f"unknown step {step!r}; one of {', '.join(STEPS)}")


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit(__doc__)
    install(argv[0], int(argv[1]))
    from cxr_explorer.cli import main as cli

    return cli(argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

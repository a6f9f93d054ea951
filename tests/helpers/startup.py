"""A parent process that starts one decode worker and stalls it at a named start-up step (test side only).

    python -m tests.helpers.startup STEP MARKER

The worker writes its pid to MARKER when it reaches STEP and waits there until MARKER.go exists, so the test can
SIGKILL this parent at that exact moment, let the worker go on, and watch what it (and the resource tracker) do.
Steps, in start-up order:

- ``import``: the spawned child is unpickling its process object (it imports this module to find the initializer);
- ``init``: the initializer has been called, before the production initializer runs;
- ``idle``: the worker has started and waits for work;
- ``decode``: the worker is in the middle of a task.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

STEPS = ("import", "init", "idle", "decode")
_STEP = os.environ.get("CXR_TEST_STARTUP_STEP", "")
_MARKER = os.environ.get("CXR_TEST_STARTUP_MARKER", "")


def _reached(step: str) -> None:
    """In the worker: record its pid and wait for the test's go if ``step`` is the armed one."""
    if step == _STEP and _MARKER and __name__ != "__main__":
        Path(_MARKER).write_text(str(os.getpid()))
        while not Path(_MARKER + ".go").exists():
            time.sleep(0.05)


_reached("import")


def initializer(*args: object) -> None:
    """Stall (armed ``init``), then run the production initializer (in the worker, ``decode`` is imported afresh,
    without the parent's patch)."""
    from cxr_explorer.index import decode

    _reached("init")
    decode._init_worker(*args)  # type: ignore[arg-type]


def stall(_task: object) -> None:
    """A decode function that stalls (armed ``decode``)."""
    _reached("decode")


def idle_marker(_task: object) -> None:
    """Run once the worker has started: marks ``idle``, without stalling the worker."""
    if _STEP == "idle":
        Path(_MARKER).write_text(str(os.getpid()))


def main() -> None:
    from cxr_explorer.index import decode
    from tests.helpers import startup  # by its importable name: the worker finds these functions by it

    step, marker = sys.argv[1], sys.argv[2]
    if step not in STEPS:
        raise SystemExit(f"unknown step {step!r}; one of {', '.join(STEPS)}")
    os.environ["CXR_TEST_STARTUP_STEP"], os.environ["CXR_TEST_STARTUP_MARKER"] = step, marker
    decode._init_worker = startup.initializer  # type: ignore[assignment]
    pool = decode.DecodePool(1, prefetch=1, fn=startup.stall)  # type: ignore[arg-type]
    pool._submit_now(startup.idle_marker if step == "idle" else startup.stall, None)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

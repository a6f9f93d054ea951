"""The search-cost split: self time of nested trace events, the app's scripts told apart from the measurement's,
wrappers taking the kind of the script they run in, and the CPU of a process tree read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from benchmarks.browser_cost import cpu_by_kind, floor_ms, trace_split

PID, MAIN, OTHER = 7, 1, 2
APP = "http://127.0.0.1:8501/static/js/react-dom.js"


def span(name: str, ts: int, dur: int, tid: int = MAIN, url: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"ph": "X", "name": name, "pid": PID, "tid": tid, "ts": ts, "dur": dur}
    if url is not None:
        event["args"] = {"data": {"url": url}}
    return event


def thread(tid: int, name: str) -> dict[str, Any]:
    return {"ph": "M", "name": "thread_name", "pid": PID, "tid": tid, "args": {"name": name}}


def test_self_time_per_kind_with_nesting() -> None:
    events = [
        thread(MAIN, "CrRendererMain"), thread(OTHER, "Compositor"),
        span("RunTask", 0, 10_000),  # 10 ms task: 6 ms of app script (1 ms of it forced style), 1 ms paint
        span("FunctionCall", 1_000, 6_000, url=APP),
        span("UpdateLayoutTree", 2_000, 1_000),
        span("Paint", 8_000, 1_000),
        span("RunTask", 20_000, 4_000),  # a timer running the recorder (no url) which calls app code for 1 ms
        span("TimerFire", 20_000, 4_000),
        span("FunctionCall", 20_500, 3_000, url=""),
        span("FunctionCall", 21_000, 1_000, url=APP),
        span("RunTask", 30_000, 2_000),  # a frame callback of the app's own
        span("FireAnimationFrame", 30_000, 2_000),
        span("FunctionCall", 30_000, 1_500, url=APP),
        span("Paint", 0, 50_000, tid=OTHER),  # another thread: not counted
    ]
    out = trace_split(events, actions=1)
    # 6 - 1 forced style; the timer's own 1 ms (a wrapper outside any script counts as the app's); the frame
    # callback with its wrapper
    assert out["js_app"] == 5.0 + 1.0 + 2.0
    assert out["style"] == 1.0 and out["paint"] == 1.0
    assert out["js_measurement"] == 3.0  # the recorder and the app code it called
    assert out["other"] == 3.0  # the first task's own time
    assert out["busy_ms"] == 16.0
    assert trace_split(events, actions=2)["busy_ms"] == 8.0


def test_no_renderer_thread_gives_zeros() -> None:
    out = trace_split([thread(OTHER, "Compositor"), span("Paint", 0, 1000, tid=OTHER)], actions=1)
    assert out["busy_ms"] == 0.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_of_a_child_counts_as_server() -> None:
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        before = cpu_by_kind()["server"]
        time.sleep(1.0)
        after = cpu_by_kind()
    finally:
        child.kill()
        child.wait()
    assert after["server"] - before >= 0.1 or after["server"] >= 0.25
    assert after["browser"] == 0.0


def test_floor_is_sessions_times_cpu_over_cores() -> None:
    assert floor_ms({"browser_cpu_ms": 300.0, "server_cpu_ms": 100.0}, sessions=8, cores=2) == 1600.0

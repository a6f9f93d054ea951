"""What one new search costs on this machine, in CPU time: every Chromium process, the app's server and the
Playwright driver (from ``/proc``), and the page's main thread split by a Chromium trace (``devtools.timeline``).

Why a trace and not the sampling profiler: the profiler's ``(program)`` bucket is every native frame on the thread
(task dispatch, IPC, the websocket, image decode), not style, layout and paint; a trace names each of them. The
split also keeps the measurement's own work apart (the benchmark's page recorder and Playwright's polling run on
the same main thread).

The floor this gives: ``sessions`` searches at once on ``cores`` cores need at least ``sessions x (browser +
server CPU per search) / cores`` when the browsers run on the server's machine (``floor_ms``).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CATEGORIES = ("js_app", "js_measurement", "gc", "style", "layout", "paint", "image_decode", "other")
TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8"]
_STYLE = ("UpdateLayoutTree", "Document::recalcStyle", "ParseAuthorStyleSheet", "ScheduleStyleRecalculation")
_LAYOUT = ("Layout", "LocalFrameView::performLayout", "UpdateLayerTree", "LocalFrameView::UpdateStyleAndLayout")
_PAINT = ("Paint", "PrePaint", "Layerize", "Commit", "PaintArtifactCompositor::Update", "CompositeLayers",
          "ProxyMain::BeginMainFrame::commit", "LocalFrameView::RunPaintLifecyclePhase")
_SCRIPT = ("FunctionCall", "EvaluateScript")  # these name their script's url
_JS = ("v8.callFunction", "v8.run", "V8.Execute", "TimerFire", "FireAnimationFrame", "EventDispatch", "v8.compile",
       "V8.CompileCode", "v8.produceCache", "RunMicrotasks")


def _tick_hz() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds used so far: user + system) of every readable process."""
    hz, out = _tick_hz(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / hz)
    return out


def cpu_by_kind(root: int | None = None) -> dict[str, float]:
    """CPU seconds used so far by the descendants of ``root`` (default: this process), summed by kind:
    ``browser`` (Chromium's processes), ``driver`` (Playwright's node driver) and ``server`` (the rest: the app)."""
    table = _proc_table()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _, _) in table.items():
        children[ppid].append(pid)
    totals = {"browser": 0.0, "driver": 0.0, "server": 0.0}
    stack = list(children[root if root is not None else os.getpid()])
    while stack:
        pid = stack.pop()
        _, name, cpu = table[pid]
        kind = "browser" if "chrom" in name.lower() else "driver" if name.startswith("node") else "server"
        totals[kind] += cpu
        stack += children[pid]
    return totals


def _kind(event: dict[str, Any]) -> str:
    name = event["name"]
    if "GC" in name or name.startswith("V8.GC") or name in ("MajorGC", "MinorGC"):
        return "gc"
    if name in _SCRIPT:
        url = str(event.get("args", {}).get("data", {}).get("url", ""))
        return "js_app" if "/static/" in url else "js_measurement"
    if name in _JS:
        return "js"
    if name in _STYLE:
        return "style"
    if name in _LAYOUT:
        return "layout"
    if name in _PAINT or name.startswith("Blink.") and name.endswith("UpdateTime"):
        return "paint"
    if "Decode" in name:
        return "image_decode"
    return "other"


def _main_thread(events: list[dict[str, Any]]) -> tuple[int, int] | None:
    """The renderer's main thread of the traced page (the ``CrRendererMain`` with the most complete events)."""
    mains = {(e["pid"], e["tid"]) for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"}
    counts = Counter((e["pid"], e["tid"]) for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) in mains)
    return counts.most_common(1)[0][0] if counts else None


def trace_split(events: list[dict[str, Any]], actions: int) -> dict[str, float]:
    """Self time on the page's main thread per action, in ms, by :data:`CATEGORIES`, plus ``busy_ms`` (their sum).
    A JavaScript call is ``js_app`` when its script is the app's own bundle (``/static/``), else
    ``js_measurement`` (a script without a url: the recorder injected by the benchmark, Playwright's evaluations);
    wrappers (timers, animation frames, events, microtasks) take the kind of the script they sit in. A call's self
    time excludes the events nested in it (style or layout forced from script count as style or layout)."""
    thread = _main_thread(events)
    spans = sorted((e for e in events if e.get("ph") == "X" and "dur" in e and (e["pid"], e["tid"]) == thread),
                   key=lambda e: (e["ts"], -e["dur"]))
    total: Counter[str] = Counter()
    stack: list[tuple[dict[str, Any], str]] = []
    for event in spans:
        while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= event["ts"]:
            stack.pop()
        kind = _kind(event)
        if kind == "js":  # a wrapper (timer, frame, event, microtasks): the kind of the script it runs in, else app
            kind = stack[-1][1] if stack and stack[-1][1].startswith("js_") else "js_app"
        elif kind == "js_app" and stack and stack[-1][1] == "js_measurement":
            kind = "js_measurement"  # the app's code called from the measurement's own call
        if stack:
            total[stack[-1][1]] -= event["dur"]
        total[kind] += event["dur"]
        stack.append((event, kind))
    n = max(actions, 1)
    out = {k: round(total[k] / 1000 / n, 1) for k in CATEGORIES}
    return {**out, "busy_ms": round(sum(out.values()), 1)}


def measure(run: Callable[[], Iterable[object]], start_trace: Callable[[], None],
            stop_trace: Callable[[], list[dict[str, Any]]], actions: int) -> dict[str, float]:
    """Run ``run`` (``actions`` searches) between ``start_trace`` and ``stop_trace`` (Chromium tracing) and return
    the CPU ms per search by process kind (``browser_cpu_ms``, ``server_cpu_ms``, ``driver_cpu_ms``) next to the main
    thread's :func:`trace_split` (``main_*``)."""
    start_trace()
    before = cpu_by_kind()
    for _ in run():
        pass
    after = cpu_by_kind()
    events = stop_trace()
    n = max(actions, 1)
    per = {f"{k}_cpu_ms": round((after[k] - before[k]) * 1000 / n, 1) for k in after}
    return {**per, **{f"main_{k}": v for k, v in trace_split(events, actions).items()}}


def floor_ms(cost: dict[str, float], sessions: int, cores: int) -> float:
    """The least time ``sessions`` simultaneous searches can take when every browser runs on these ``cores``."""
    return round(sessions * (cost["browser_cpu_ms"] + cost["server_cpu_ms"]) / max(cores, 1), 1)

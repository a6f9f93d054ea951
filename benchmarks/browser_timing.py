"""Where a browser action's time goes: the Streamlit websocket frames seen by the page, timed in the page.

An init script wraps the page's ``WebSocket`` and records, on the page's clock (``performance.timeOrigin +
performance.now()``, epoch ms, valid across navigations), every frame sent and received (binary payload base64)
and the last user input (pointer or key down). :func:`breakdown` decodes the frames with Streamlit's protobuf
classes and splits one action into

* ``input_to_send_ms``: the user's input to the rerun request leaving the page (frontend handling),
* ``server_ms``: the request sent to the ``script_finished`` message received: queueing, the script run on the
  server and the transfer of its deltas over the (local) socket; ``first_delta_ms`` is the part until the first
  message of the run arrived,
* ``render_ms``: ``script_finished`` to the page idle (no running status, no stale element, every image loaded),
* ``bytes_received``: the websocket payload of the action (images travel over HTTP, not counted here).
"""

from __future__ import annotations

import base64
from typing import Any

# ForwardMsg.script_finished of a run cut short by a newer one (Streamlit's enum; the page recorder and the protocol
# clients both skip it)
FINISHED_EARLY_FOR_RERUN = 2

RECORDER_JS = """
(() => {
  const log = window.__cxrWs = {frames: [], input: 0};
  const now = () => performance.timeOrigin + performance.now();
  const b64 = (buf) => { let s = ''; const a = new Uint8Array(buf);
    for (let i = 0; i < a.length; i += 32768) s += String.fromCharCode.apply(null, a.subarray(i, i + 32768));
    return btoa(s); };
  for (const ev of ['pointerdown', 'keydown']) addEventListener(ev, () => { log.input = now(); }, true);
  // a message that ends a script run: a ForwardMsg whose top-level field 6 (script_finished) is set to anything but
  // FINISHED_EARLY_FOR_RERUN; protobuf wire format walked by hand (varints, length-delimited fields skipped)
  const endsRun = (buf) => { const a = new Uint8Array(buf); let i = 0;
    const varint = () => { let v = 0, s = 1, b;
      do { b = a[i++]; v += (b & 127) * s; s *= 128; } while (b & 128); return v; };
    while (i < a.length) { const tag = varint(), field = Math.floor(tag / 8), wire = tag % 8;
      if (wire === 0) { const v = varint(); if (field === 6) return v !== __EARLY__; }
      else if (wire === 2) { const n = varint(); i += n; }  // not `i += varint()`: that adds to the old i
      else if (wire === 1) i += 8; else if (wire === 5) i += 4; else return false; }
    return false; };
  // every frame: is the page idle (run handled, no running status, no stale element, every image loaded, every chart
  // drawn)? idleAt: the first
  // idle frame after the last busy frame and after the last finished run (0 while busy)
  log.finished = 0; log.idleAt = 0;
  // the app itself has handled the end of the run (its script state, set after the run's messages are applied)
  const idle = () => { const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-script-state') === 'notRunning' &&
      !document.querySelector('[data-testid="stStatusWidget"]') && !document.querySelector('[data-stale="true"]') &&
      [...document.querySelectorAll('[data-testid="stMain"] img')].every(i => i.complete) &&
      [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
        .every(c => c.querySelector('svg.marks, canvas'));
  };
  log.idle = idle;
  const tick = () => { const t = now();
    if (!idle()) log.idleAt = 0; else if (!log.idleAt || log.idleAt < log.finished) log.idleAt = t;
    requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const Orig = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new Orig(...args);
    const send = ws.send.bind(ws);
    ws.send = (data) => { log.frames.push({t: now(), dir: 'out', n: data.byteLength || data.length || 0});
      return send(data); };
    ws.addEventListener('message', (e) => { const d = e.data;
      if (!(d instanceof ArrayBuffer)) return;
      log.frames.push({t: now(), dir: 'in', n: d.byteLength, p: b64(d)});
      if (endsRun(d)) log.finished = now(); });
    return ws;
  };
  window.WebSocket.prototype = Orig.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""
RECORDER_JS = RECORDER_JS.replace("__EARLY__", str(FINISHED_EARLY_FOR_RERUN))
# idle now after a run that finished at or after t0 (the action's start, page clock): the first idle frame after
# the last finished run (the page's clock), else false
IDLE_AT_JS = ("(t0) => { const l = window.__cxrWs; return (l && l.idleAt && l.finished >= t0 && l.idleAt >= l.finished "
              "&& l.idle()) ? l.idleAt : false; }")
NOW_JS = "() => [performance.timeOrigin + performance.now(), performance.timeOrigin]"


def install(page: Any) -> None:
    """Record the page's websocket frames from its next navigation on (call before ``goto``)."""
    page.add_init_script(RECORDER_JS)


def _kind(payload: str) -> str:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    try:
        return ForwardMsg.FromString(base64.b64decode(payload)).WhichOneof("type") or "?"
    except Exception:  # a frame that is not a ForwardMsg: counted as bytes only
        return "?"


FRAMES_JS = "(n) => ({frames: window.__cxrWs.frames.slice(n), input: window.__cxrWs.input})"
MARK_JS = "() => window.__cxrWs ? window.__cxrWs.frames.length : 0"


def split(log: dict[str, Any], idle_at: float) -> dict[str, float]:
    """The split of one action from its recorded frames (``FRAMES_JS``'s result) and ``idle_at`` (the page's clock
    when it was idle, from :data:`IDLE_AT_JS`), in ms; when a run was cut short by a newer one, up to the last
    ``script_finished``. Empty when no rerun was seen."""
    frames = log["frames"]
    sent = [f["t"] for f in frames if f["dir"] == "out"]
    received = [f for f in frames if f["dir"] == "in"]
    finished = [f["t"] for f in received if _kind(f["p"]) == "script_finished"]
    if not sent or not finished:
        return {}
    first_in = next((f["t"] for f in received if f["t"] >= sent[0]), finished[-1])
    return {"input_to_send_ms": round(max(0.0, sent[0] - log["input"]), 1) if log["input"] else 0.0,
            "first_delta_ms": round(first_in - sent[0], 1),
            "server_ms": round(finished[-1] - sent[0], 1),
            "render_ms": round(max(0.0, idle_at - finished[-1]), 1),
            "bytes_received": float(sum(f["n"] for f in received)),
            "runs": float(len(finished))}


def mark(page: Any) -> int:
    """The number of frames recorded so far (an action's frames are those after it)."""
    return int(page.evaluate(MARK_JS))


def input_at(page: Any) -> float:
    """The page's clock at the last pointer or key down (0 when none yet)."""
    return float(page.evaluate("() => window.__cxrWs.input"))


def breakdown(page: Any, since: int, idle_at: float) -> dict[str, float]:
    """:func:`split` of the frames recorded after ``since`` (sync Playwright page)."""
    return split(page.evaluate(FRAMES_JS, since), idle_at)


def medians(parts: list[dict[str, float]]) -> dict[str, float]:
    """The median of each component over several actions."""
    import statistics

    keys = sorted({k for p in parts for k in p})
    return {k: round(statistics.median([p[k] for p in parts if k in p]), 1) for k in keys}


def wait_idle_at(page: Any, t0: float = 0.0, timeout_ms: float = 120_000) -> float:
    """Wait until the page is idle after a request sent at or after ``t0`` (the page's clock); returns the clock at
    the first idle frame after the reply (see :data:`IDLE_AT_JS`)."""
    return float(page.wait_for_function(IDLE_AT_JS, arg=t0, timeout=timeout_ms, polling=10).json_value())


# p50 goals of issue 8 on a quiet 2-core CPU (the Map's is for 10k items)
GOALS_MS = {"new_search": 500, "ground_one_phrase": 400, "search_map_search": 500, "map_open_pca": 1000,
            "map_open_umap": 1000}
SPLIT_COLS = ("input_to_send_ms", "server_ms", "render_ms", "driver_ms", "bytes_received")


def _action_row(name: str, r: dict[str, Any], failed: int) -> str:
    split = r.get("split_p50", {})
    cells = [str(split.get(c, "-")) if c != "bytes_received" or c not in split else f"{split[c] / 1024:.0f} KiB"
             for c in SPLIT_COLS]
    goal = GOALS_MS.get(name)
    verdict = "" if goal is None else f" (goal {goal}: {'met' if r['p50_ms'] <= goal else 'NOT met'})"
    return (f"| {name}{verdict} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['n']} | {failed} | "
            + " | ".join(cells) + " |")


def browser_lines(b: dict[str, Any]) -> list[str]:
    """The browser section as markdown: per bundle, each action's p50/p95 and the p50 of its split (see the module
    docstring), then the concurrent sessions."""
    if "status" in b:
        return [f"{b['status']}: {b.get('reason', '')}"]
    out = [str(b.get("note", "")), ""]
    for name, r in b.items():
        if not isinstance(r, dict) or "actions" not in r:
            continue
        acts = r["actions"]
        failed = acts.get("failed", {})
        out += [f"### {name} ({r['items']:,} items, model {r['model']})", "",
                ("| action | p50 ms | p95 ms | n | failed | input→send ms | server ms | render ms | Playwright ms "
                 "| websocket |"),
                "|---|---|---|---|---|---|---|---|---|---|"]
        out += [_action_row(a, v, failed.get(a, 0)) for a, v in acts.items() if a != "failed" and "p50_ms" in v]
        out += [f"| {a} | - | - | 0 | {n} | | | | | |" for a, n in failed.items() if a not in acts]
        cost, alone = r.get("search_cost"), r.get("search_server_alone", {})
        if cost and alone.get("n"):
            out += ["", f"What a new search costs: the server alone (a protocol client, nothing rendered) "
                    f"{alone['p50_ms']:.0f} ms p50 from the request to the run's end. CPU per search in the browser "
                    f"(a trace of {cost['searches']} searches): Chromium's processes {cost['browser_cpu_ms']} ms, the "
                    f"server {cost['server_cpu_ms']} ms, the Playwright driver {cost['driver_cpu_ms']} ms. The page's "
                    f"main thread {cost['main_busy_ms']} ms: Streamlit's frontend JavaScript {cost['main_js_app']}, "
                    f"the measurement's own scripts {cost['main_js_measurement']}, GC {cost['main_gc']}, style "
                    f"{cost['main_style']}, layout {cost['main_layout']}, paint and compositing {cost['main_paint']}, "
                    f"image decode {cost['main_image_decode']}, other native work in tasks (websocket, IPC, "
                    f"scheduling) {cost['main_other']}. So {cost['sessions']} searches at once with their browsers "
                    f"on these {cost['cores']} cores take at least {cost['floor_ms']:.0f} ms "
                    "(sessions x (browser + server CPU) / cores)."]
        c = r.get("concurrent", {})
        if c:
            split = c.get("split_p50", {})
            out += ["", f"{c['sessions']} concurrent sessions, {c.get('n', 0)} searches: p50 {c.get('p50_ms', 0):.0f} "
                    f"ms, p95 {c.get('p95_ms', 0):.0f} ms (goal 3000: "
                    f"{'met' if c.get('p95_ms', 1e9) <= 3000 else 'NOT met'}), errors {c['errors']}"
                    + (f"; split p50: server {split.get('server_ms')} ms, render {split.get('render_ms')} ms"
                       if split else "") + " (all 8 Chromium pages render on the server's 2 cores)"]
        proto = r.get("concurrent_protocol", {})
        if proto.get("n"):
            out += ["", f"{proto['sessions']} concurrent sessions from protocol clients (the server's whole work, "
                    f"no rendering on this machine; see benchmarks/browser_protocol.py), {proto['n']} searches: p50 "
                    f"{proto['p50_ms']:.0f} ms, p95 {proto['p95_ms']:.0f} ms (goal 3000: "
                    f"{'met' if proto['p95_ms'] <= 3000 else 'NOT met'}), errors {proto['errors']}"]
        out.append("")
    return out

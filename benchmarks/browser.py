"""The real app (``cxr-explorer app``) in headless Chromium (Playwright) on a synthetic bundle and the covid bundle
named by ``$CXR_EXPLORER_BENCH_COVID``: each action from the user's input (a navigation: its request) to the first
idle frame after the run's ``script_finished``, on the page's clock (:data:`RECORDER_JS`); a search's CPU by process
(``/proc``) and the floor of ``sessions`` searches at once on these cores; ``sessions`` concurrent Chromium pages,
and as many protocol clients that speak Streamlit's websocket protocol and render nothing (the server's whole work).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

from benchmarks.app import QUERIES as APP_QUERIES
from benchmarks.common import ms_stats

CHROMIUM = os.environ.get("CXR_EXPLORER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
QUERIES = APP_QUERIES[:8]
COVID_BUNDLE_ENV = "CXR_EXPLORER_BENCH_COVID"  # a built covid bundle folder (cxr-explorer build)
FINISHED_EARLY_FOR_RERUN = 2  # ForwardMsg.script_finished of a run cut short by a newer one (Streamlit's enum)
# p50 goals on a quiet 2-core CPU (the Map's is for 10k items); 8 sessions: p95
GOALS_MS = {"new_search": 500, "ground_one_phrase": 400, "search_map_search": 500, "map_open_pca": 1000,
            "map_open_umap": 1000, "concurrent": 3000}
RECORDER_JS = """
(() => {
  const log = window.__cxrWs = {input: 0, finished: 0, idleAt: 0};
  const now = () => performance.timeOrigin + performance.now();
  for (const ev of ['pointerdown', 'keydown']) addEventListener(ev, () => { log.input = now(); }, true);
  // a ForwardMsg whose field 6 (script_finished) is not FINISHED_EARLY_FOR_RERUN; protobuf wire format by hand
  const endsRun = (buf) => { const a = new Uint8Array(buf); let i = 0;
    const varint = () => { let v = 0, s = 1, b;
      do { b = a[i++]; v += (b & 127) * s; s *= 128; } while (b & 128); return v; };
    while (i < a.length) { const tag = varint(), field = Math.floor(tag / 8), wire = tag % 8;
      if (wire === 0) { const v = varint(); if (field === 6) return v !== __EARLY__; }
      else if (wire === 2) { const n = varint(); i += n; }
      else if (wire === 1) i += 8; else if (wire === 5) i += 4; else return false; }
    return false; };
  const idle = () => { const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-script-state') === 'notRunning' &&
      !document.querySelector('[data-testid="stStatusWidget"]') && !document.querySelector('[data-stale="true"]') &&
      [...document.querySelectorAll('[data-testid="stMain"] img')].every(i => i.complete) &&
      [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
        .every(c => c.querySelector('svg.marks, canvas'));
  };
  log.idle = idle;
  // idleAt: the first idle frame after the last busy frame and after the last finished run (0 while busy)
  const tick = () => { const t = now();
    if (!idle()) log.idleAt = 0; else if (!log.idleAt || log.idleAt < log.finished) log.idleAt = t;
    requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const Orig = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new Orig(...args);
    ws.addEventListener('message', (e) => {
      if (e.data instanceof ArrayBuffer && endsRun(e.data)) log.finished = now(); });
    return ws;
  };
  window.WebSocket.prototype = Orig.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
""".replace("__EARLY__", str(FINISHED_EARLY_FOR_RERUN))
# the page's clock at the first idle frame after a run that finished at or after t0, else false
IDLE_AT_JS = ("(t0) => { const l = window.__cxrWs; return (l && l.idleAt && l.finished >= t0 && l.idleAt >= l.finished "
              "&& l.idle()) ? l.idleAt : false; }")
NOW_JS = "() => [performance.timeOrigin + performance.now(), performance.timeOrigin]"
INPUT_JS = "() => window.__cxrWs.input"


@contextmanager
def app_server(bundle: Path) -> Iterator[str]:
    """A running ``cxr-explorer app`` on a free port; yields its base url."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("cxr-explorer") or str(Path(sys.executable).parent / "cxr-explorer")
    proc = subprocess.Popen([exe, "app", str(bundle), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def _idle(page: Any, text: str | None = None, t0: float = 0.0) -> float:
    """Wait for ``text`` (when given), then for the page idle after a run that finished at or after ``t0`` (the
    page's clock); returns the page's clock at its first idle frame."""
    if text:
        page.get_by_text(text, exact=False).first.wait_for(timeout=40_000)
    return float(page.wait_for_function(IDLE_AT_JS, arg=t0, timeout=120_000, polling=10).json_value())


def _timed(action: Callable[[], object], page: Any, text: str | None) -> tuple[float, float]:
    """(seconds from the user's input to the page idle, seconds of the whole span Playwright saw), on the page's
    clock (epoch ms, valid across a navigation)."""
    start, origin = page.evaluate(NOW_JS)
    action()
    idle_at = _idle(page, text, start)
    navigated = page.evaluate(NOW_JS)[1] != origin
    user_at = start if navigated else max(start, float(page.evaluate(INPUT_JS)))
    return (idle_at - user_at) / 1000, (idle_at - start) / 1000


def _search(page: Any, q: str) -> None:
    page.get_by_label("Free text").fill(q)
    page.get_by_role("button", name="Search", exact=True).click()


def actions(page: Any, url: str, repeats: int, has_umap: bool) -> dict[str, Any]:
    """Time each action ``repeats`` times on one page: {action: ms stats + ``driver_p50_ms``, "failed": counts}."""
    out: dict[str, list[float]] = defaultdict(list)
    driver: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, int] = {}

    def rec(name: str, action: Callable[[], object], text: str | None) -> None:
        try:  # a Playwright timeout counts as a failure of that action; the run goes on
            seconds, span = _timed(action, page, text)
        except Exception:
            failed[name] = failed.get(name, 0) + 1
            return
        out[name].append(seconds)
        driver[name].append(span)

    page.goto(url)
    _idle(page, "Type a query")
    for i in range(repeats):
        q = f"{QUERIES[i % len(QUERIES)]} {i}"
        rec("new_search", partial(_search, page, q), f"“{q}”")
    page.goto(f"{url}/grounding")
    _idle(page, "global similarity")
    box = page.get_by_label("Phrase(s)", exact=False)
    for i in range(repeats):
        box.fill(f"effusion {i}")
        rec("ground_one_phrase", lambda: box.press("Enter"), None)
    for method in ["pca"] + (["umap"] if has_umap else []):
        for _ in range(repeats):
            page.goto(f"{url}/?q=effusion")
            _idle(page, "matching")
            rec(f"map_open_{method}", partial(page.goto, f"{url}/map?proj={method}"), "embeddings")
    sidebar = page.locator('[data-testid="stSidebar"]')
    for _ in range(repeats):  # Search -> Map -> Search, each leg timed on its own, then summed
        page.goto(f"{url}/?q=effusion")
        _idle(page, "matching")
        rec("search_to_map", sidebar.get_by_role("link", name="Map").click, "embeddings")
        rec("map_to_search", sidebar.get_by_role("link", name="Search").click, "matching")
    for i in range(repeats):  # a composed query (a phrase, a negative, a weight) opened from its link
        q = f"{QUERIES[i % len(QUERIES)]} {i}"
        rec("composed_search", partial(page.goto, f"{url}/?q={quote_plus(q)}&and=cardiomegaly&not=pneumothorax&w=0.5"),
            "matching")
    for i in range(repeats):  # a feedback round: the first hit marked relevant, the ranking redone (as its link)
        page.goto(f"{url}/?q=effusion+{i}&not=pneumothorax")
        _idle(page, "matching")
        first = page.locator("p.cxr-hit").first.inner_text().split(" · ")[2]
        rec("feedback_round", partial(page.goto, f"{url}/?q=effusion+{i}&not=pneumothorax&rel={quote_plus(first)}"
                                               f"&round=1"), "matching")
    for i in range(repeats):  # a page of hits added to a new collection with the form under the results
        page.goto(f"{url}/?q=effusion")
        _idle(page, "matching")
        page.get_by_label("Collection", exact=True).fill(f"bench {i}")
        rec("collection_add_page", page.get_by_role("button", name="Add", exact=True).click, "Added")
    legs = list(zip(out.get("search_to_map", []), out.get("map_to_search", []), strict=False))
    if legs:
        out["search_map_search"] = [a + b for a, b in legs]
    return {**{k: {**ms_stats(v), **({"driver_p50_ms": ms_stats(driver[k])["p50_ms"]} if driver.get(k) else {})}
               for k, v in out.items()}, "failed": failed}


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds used so far by this process's descendants (from ``/proc``): ``browser`` (Chromium's processes),
    ``driver`` (Playwright's node driver) and ``server`` (the rest: the app)."""
    table, children = {}, defaultdict(list)
    for entry in Path("/proc").iterdir():
        try:  # pid -> (command name, CPU seconds: user + system); a process gone meanwhile is skipped
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat:
            fields = stat[stat.rindex(")") + 2:].split()
            table[int(entry.name)] = (stat[stat.index("(") + 1:stat.rindex(")")],
                                      (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
            children[int(fields[1])].append(int(entry.name))
    totals, stack = {"browser": 0.0, "driver": 0.0, "server": 0.0}, list(children[os.getpid()])
    while stack:
        pid = stack.pop()
        name, cpu = table[pid]
        totals["browser" if "chrom" in name.lower() else "driver" if name.startswith("node") else "server"] += cpu
        stack += children[pid]
    return totals


def search_cost(page: Any, url: str, repeats: int, sessions: int) -> dict[str, float]:
    """CPU ms per search of ``repeats`` new searches by process kind, and ``floor_ms``: the least time ``sessions``
    such searches at once take with their browsers on this machine's cores (sessions x (browser + server) / cores)."""
    page.goto(url)
    _idle(page, "Type a query")
    before = cpu_by_kind()
    for i in range(repeats):
        q = f"{QUERIES[i % len(QUERIES)]} cost {i}"
        _timed(partial(_search, page, q), page, f"“{q}”")
    after = cpu_by_kind()
    cost = {f"{k}_cpu_ms": round((after[k] - before[k]) * 1000 / max(repeats, 1), 1) for k in after}
    cores = os.cpu_count() or 1
    floor = round(sessions * (cost["browser_cpu_ms"] + cost["server_cpu_ms"]) / cores, 1)
    return {**cost, "searches": repeats, "cores": cores, "sessions": sessions, "floor_ms": floor}


async def _page_session(browser: Any, url: str, repeats: int, offset: int) -> tuple[list[float], int]:
    """One Chromium session running ``repeats`` new searches: (seconds each from the click to the page idle, errors)."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    await ctx.add_init_script(RECORDER_JS)
    page = await ctx.new_page()
    times, errors = [], 0
    try:
        await page.goto(url)
        await page.get_by_text("Type a query").wait_for(timeout=180_000)
        for i in range(repeats):
            q = f"{QUERIES[(i + offset) % len(QUERIES)]} s{offset} {i}"
            try:
                t0 = (await page.evaluate(NOW_JS))[0]
                await page.get_by_label("Free text").fill(q)
                await page.get_by_role("button", name="Search", exact=True).click()
                await page.get_by_text(f"“{q}”", exact=False).first.wait_for(timeout=40_000)
                idle = await page.wait_for_function(IDLE_AT_JS, arg=t0, timeout=120_000, polling=20)
                times.append((float(await idle.json_value()) - float(await page.evaluate(INPUT_JS))) / 1000)
            except Exception:  # a timeout or a broken page counts as an error of that session
                errors += 1
        return times, errors + await page.locator('[data-testid="stException"]').count()
    finally:
        await ctx.close()


async def _pages(url: str, sessions: int, repeats: int) -> list[tuple[list[float], int]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            return list(await asyncio.gather(*[_page_session(browser, url, repeats, i) for i in range(sessions)]))
        finally:
            await browser.close()


async def _protocol_run(ws: Any, query_string: str, expect: str | None) -> tuple[float, bool]:
    """Ask for one run with ``query_string`` as the page does; (seconds to its script_finished, whether it went right:
    no exception element and, when ``expect`` is given, a results line naming it with "matching")."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = BackMsg()
    msg.rerun_script.query_string = query_string
    start = time.perf_counter()
    await ws.send(msg.SerializeToString())
    seen, broken = expect is None, False
    while True:
        fm = ForwardMsg.FromString(await ws.recv())
        kind = fm.WhichOneof("type")
        if kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
            el = fm.delta.new_element
            broken |= el.WhichOneof("type") == "exception"
            seen |= bool(expect) and el.WhichOneof("type") == "markdown" and "matching" in el.markdown.body \
                and str(expect) in el.markdown.body
        if kind == "script_finished" and fm.script_finished != FINISHED_EARLY_FOR_RERUN:
            return time.perf_counter() - start, seen and not broken


async def _protocol_session(url: str, queries: list[str], ready: asyncio.Barrier) -> tuple[list[float], int]:
    """One protocol client: the app's first page (untimed), then, once every session has its page, one search per
    query, back to back; (seconds each, errors)."""
    import websockets
    from websockets.typing import Subprotocol

    times: list[float] = []
    errors = 0
    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream",
                                  subprotocols=[Subprotocol("streamlit")], max_size=None, open_timeout=120) as ws:
        await asyncio.wait_for(_protocol_run(ws, "", None), 180)
        await ready.wait()
        for q in queries:
            try:
                seconds, ok = await asyncio.wait_for(_protocol_run(ws, urlencode({"q": q}), q), 120)
            except (TimeoutError, OSError):
                errors += 1
                continue
            times.append(seconds)
            errors += not ok
    return times, errors


async def _protocol(url: str, sessions: int, repeats: int) -> list[tuple[list[float], int]]:
    ready = asyncio.Barrier(sessions)
    plans = [[f"{QUERIES[(i + s) % len(QUERIES)]} p{s} {i}" for i in range(repeats)] for s in range(sessions)]
    return list(await asyncio.gather(*[_protocol_session(url, plan, ready) for plan in plans]))


def concurrent(results: list[tuple[list[float], int]]) -> dict[str, Any]:
    """p50/p95 (ms) and errors over every session's searches."""
    times = [t for ts, _ in results for t in ts]
    return {"sessions": len(results), **(ms_stats(times) if times else {}), "errors": sum(e for _, e in results)}


def bundles_for(tmp: Path, n_items: int) -> dict[str, Path]:
    """A synthetic ``n_items`` bundle (built here, map coordinates included) and the covid bundle named by
    ``$CXR_EXPLORER_BENCH_COVID`` when set."""
    from benchmarks.app import synthetic_bundle
    from cxr_explorer.retrieval.bundle.store import has_bundle

    out = {f"synthetic-{n_items}": synthetic_bundle(tmp / f"browser-{n_items}", n_items)}
    given = os.environ.get(COVID_BUNDLE_ENV)
    return {"covid": Path(given), **out} if given and has_bundle(given) else out


def run_browser(bundles: dict[str, Path], repeats: int = 5, sessions: int = 8) -> dict[str, Any]:
    """Per bundle: the action timings, the search cost and the concurrent sessions (module docstring)."""
    from playwright.sync_api import sync_playwright

    from cxr_explorer.retrieval.bundle.store import read_manifest

    if not Path(CHROMIUM).exists():
        return {"status": "skipped", "reason": f"Chromium not found at {CHROMIUM}"}
    out: dict[str, Any] = {}
    for name, bundle in bundles.items():
        manifest = read_manifest(bundle) or {}
        has_umap = "UMAP" in manifest.get("projections", {}).get("methods", {}).get("images", [])
        with app_server(bundle) as url:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 800})
                    page.add_init_script(RECORDER_JS)
                    timings = actions(page, url, repeats, has_umap)
                    cost = search_cost(page, url, repeats, sessions)
                finally:
                    browser.close()
            pages = concurrent(asyncio.run(_pages(url, sessions, max(2, repeats // 2))))
            server_only = concurrent(asyncio.run(_protocol(url, sessions, max(2, repeats // 2))))
        out[name] = {"items": int(manifest["count"]), "model": manifest["model"]["name"], "actions": timings,
                     "search_cost": cost, "concurrent": pages, "concurrent_protocol": server_only}
    return out


def main() -> None:
    """``python -m benchmarks.browser BUNDLE ...``: the JSON figures (``$REPEATS``: 5, ``$SESSIONS``: 8)."""
    import json

    bundles = {Path(b).name: Path(b) for b in sys.argv[1:]}
    print(json.dumps(run_browser(bundles, int(os.environ.get("REPEATS", "5")), int(os.environ.get("SESSIONS", "8"))),
                     indent=2))


if __name__ == "__main__":
    main()

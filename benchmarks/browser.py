"""Browser timings: the real app (``cxr-explorer app``) in headless Chromium (Debian's, via Playwright), from the
user's action to the result visible (images loaded, Streamlit idle), on a given bundle (the covid corpus when built)
and a synthetic one (``benchmarks.app.synthetic_bundle``, ``tiny-random``: the text encoder is the tiny model).

Actions: new text search, filter change, open case, retrieve-then-ground on 12 hits, one grounding phrase, four
phrases, Map first open (PCA, and UMAP where stored), Search -> Map -> Search; p50/p95 over ``repeats``; then
``sessions`` concurrent browser contexts each running ``repeats`` new searches (p50, p95, errors), and the same
number of sessions and searches from protocol clients that render nothing (``benchmarks/browser_protocol.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import browser_cost, browser_timing
from benchmarks.browser_protocol import concurrent_protocol
from benchmarks.common import ms_stats

CHROMIUM = os.environ.get("CXR_EXPLORER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
QUERIES = ["left pleural effusion", "right lower lobe pneumonia", "cardiomegaly with edema", "pneumothorax",
           "bilateral patchy opacities", "no acute findings", "left basal atelectasis", "enlarged heart"]


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
    """Wait for ``text`` (when given), then for Streamlit idle with every image loaded after a request sent at or
    after ``t0`` (the page's clock); returns the page's clock at the first idle frame."""
    if text:
        page.get_by_text(text, exact=False).first.wait_for(timeout=40_000)
    return browser_timing.wait_idle_at(page, t0)


def _timed(action: Callable[[], object], page: Any, text: str | None) -> tuple[float, dict[str, float]]:
    """(seconds from the user's input to the page idle, where they went: see benchmarks/browser_timing.py), on the
    page's own clock (epoch ms, valid across a navigation). The input is the action's last pointer or key down
    (a click on Search, Enter in a box); a navigation (``goto``) starts when it is asked for. The end is the first
    idle frame after the last reply, so neither Playwright's own steps before the click (fill, actionability checks)
    nor its polling after the page went idle are counted; ``driver_ms`` is the whole span seen by Playwright."""
    since = browser_timing.mark(page)
    start, origin = page.evaluate(browser_timing.NOW_JS)
    action()
    idle_at = _idle(page, text, start)
    navigated = page.evaluate(browser_timing.NOW_JS)[1] != origin  # a new document records its frames from 0
    user_at = start if navigated else max(start, browser_timing.input_at(page))
    parts = browser_timing.breakdown(page, 0 if navigated else since, idle_at)
    return (idle_at - user_at) / 1000, {**parts, "driver_ms": round(idle_at - start, 1)}


def _search(page: Any, q: str) -> None:
    page.get_by_label("Free text").fill(q)
    page.get_by_role("button", name="Search", exact=True).click()


def _open_case(page: Any, n: int) -> None:
    page.locator("[class*=\"st-key-open_\"] button:visible").nth(n).click()
    page.get_by_text("Metadata", exact=True).wait_for(timeout=40_000)


def _pick_case(page: Any, n: int) -> None:
    page.get_by_role("combobox", name="Case").click()
    page.get_by_role("option").nth(n).click()


def actions(page: Any, url: str, repeats: int, has_umap: bool, has_pairs: bool = False) -> dict[str, Any]:
    """Time each action ``repeats`` times on one page; returns {action: ms stats}. ``has_pairs``: the bundle stores
    BioViL-T current+prior embeddings, so the Compare view (both images grounded, interval change) is timed too."""
    out: dict[str, list[float]] = {}
    parts: dict[str, list[dict[str, float]]] = {}
    failed: dict[str, int] = {}

    def rec(name: str, call: tuple[Callable[[], object], Any, str | None]) -> None:
        """Time one (action, page, text to wait for); a timeout counts as a failure of that action (the run goes
        on)."""
        action, _, text = call
        try:
            seconds, split = _timed(action, page, text)
        except Exception:  # playwright timeouts: reported, not fatal
            failed[name] = failed.get(name, 0) + 1
            return
        out.setdefault(name, []).append(seconds)
        parts.setdefault(name, []).append(split)

    page.goto(url)
    _idle(page, "Type a query")
    page.get_by_text("Options and filters").click()  # the k box lives in the expander
    for i in range(repeats):
        q = f"{QUERIES[i % len(QUERIES)]} {i}"
        rec("new_search", (partial(_search, page, q), page, f"“{q}”"))
        # k 13 or 14: never the default 12 that each fresh search view starts at (an unchanged k reruns nothing;
        # the old 12/13 pair timed a no-op every other time)
        page.get_by_label("k (per page)").fill(str(13 + (i % 2)))
        rec("filter_change", (lambda: page.get_by_label("k (per page)").press("Enter"), page,
                                    f"Results 1–{13 + (i % 2)} "))
        # each Open button's container also holds a hidden 0-px copy of the button (Streamlit 1.67): a plain CSS
        # locator's odd positions hit those copies and the click waited until it timed out; only visible ones now
        rec("open_case", (partial(_open_case, page, i % 8), page, None))
        page.goto(f"{url}/?q=effusion")  # a fresh view: the dialog closed, the next search starts clean
        _idle(page, "matching")
        page.get_by_text("Options and filters").click()
    for i in range(repeats):  # retrieve-then-ground on 12 hits, timed from the toggle
        page.goto(f"{url}/?q=effusion+{i}")
        _idle(page, "matching")
        rec("retrieve_then_ground_12", (lambda: page.get_by_text("Ground the query on every result").click(),
                                              page, "shared range"))
    page.goto(f"{url}/grounding")
    _idle(page, "global similarity")
    box = page.get_by_label("Phrase(s)", exact=False)
    for i in range(repeats):
        box.fill(f"effusion {i}")
        rec("ground_one_phrase", (lambda: box.press("Enter"), page, None))
        box.fill(f"effusion {i}; edema {i}; opacity {i}; nodule {i}")
        rec("ground_four_phrases", (lambda: box.press("Enter"), page, None))
    for i in range(repeats):
        box.fill(f"edema {i}")
        t0 = page.evaluate(browser_timing.NOW_JS)[0]
        box.press("Enter")
        _idle(page, None, t0)
        rec("switch_case", (partial(_pick_case, page, 1 + i), page, None))
    for method in ["PCA"] + (["UMAP"] if has_umap else []):
        for _ in range(repeats):
            page.goto(f"{url}/?q=effusion")
            _idle(page, "matching")
            target = f"{url}/map?proj={method.lower()}"
            rec(f"map_open_{method.lower()}", (partial(page.goto, target), page, "embeddings"))
    for _ in range(repeats if has_pairs else 0):
        page.goto(f"{url}/?q=effusion")
        _idle(page, "matching")
        rec("compare_open", (partial(page.goto, f"{url}/compare"), page, "Interval change (zero-shot)"))
    sidebar = page.locator('[data-testid="stSidebar"]')
    for _ in range(repeats):  # Search -> Map -> Search, each leg timed (and split) on its own, then summed
        page.goto(f"{url}/?q=effusion")
        _idle(page, "matching")
        rec("search_to_map", (sidebar.get_by_role("link", name="Map").click, page, "embeddings"))
        rec("map_to_search", (sidebar.get_by_role("link", name="Search").click, page, "matching"))
    legs = list(zip(out.get("search_to_map", []), out.get("map_to_search", []), strict=False))
    if legs:
        out["search_map_search"] = [a + b for a, b in legs]
    return {**{k: {**ms_stats(v), **({"split_p50": browser_timing.medians(parts[k])} if parts.get(k) else {})}
               for k, v in out.items()}, "failed": failed}


def search_cost(browser: Any, page: Any, url: str, repeats: int, sessions: int) -> dict[str, float]:
    """``repeats`` new searches under a Chromium trace: CPU ms per search of the browser's processes, the server and
    the driver, and the page's main thread split (:func:`benchmarks.browser_cost.measure`), plus ``floor_ms``: the
    least time ``sessions`` such searches at once can take with their browsers on this machine's cores."""
    import json

    page.goto(url)
    _idle(page, "Type a query")

    def run() -> Iterator[float]:
        for i in range(repeats):
            q = f"{QUERIES[i % len(QUERIES)]} cost {i}"
            yield _timed(partial(_search, page, q), page, f"“{q}”")[0]

    def stop() -> list[dict[str, Any]]:
        trace = json.loads(browser.stop_tracing())
        return trace["traceEvents"] if isinstance(trace, dict) else trace

    cost = browser_cost.measure(run, partial(browser.start_tracing, page=page,
                                             categories=browser_cost.TRACE_CATEGORIES), stop, repeats)
    cores = os.cpu_count() or 1
    floor = browser_cost.floor_ms(cost, sessions, cores)
    return {**cost, "searches": repeats, "cores": cores, "sessions": sessions, "floor_ms": floor}


async def _session(browser: Any, url: str, repeats: int, offset: int) -> tuple[list[float], int, list[dict]]:
    """One browser session running ``repeats`` new searches: (seconds each, errors, split of each)."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    await ctx.add_init_script(browser_timing.RECORDER_JS)
    page = await ctx.new_page()
    times, errors, splits = [], 0, []
    try:
        await page.goto(url)
        await page.get_by_text("Type a query").wait_for(timeout=180_000)
        for i in range(repeats):
            q = f"{QUERIES[(i + offset) % len(QUERIES)]} s{offset} {i}"
            try:
                since = await page.evaluate(browser_timing.MARK_JS)
                t0 = (await page.evaluate(browser_timing.NOW_JS))[0]
                await page.get_by_label("Free text").fill(q)
                await page.get_by_role("button", name="Search", exact=True).click()
                await page.get_by_text(f"“{q}”", exact=False).first.wait_for(timeout=40_000)
                idle = await page.wait_for_function(browser_timing.IDLE_AT_JS, arg=t0, timeout=120_000, polling=20)
                idle_at = float(await idle.json_value())
                frames = await page.evaluate(browser_timing.FRAMES_JS, since)
                times.append((idle_at - frames["input"]) / 1000)  # the click on Search to the page idle
                splits.append(browser_timing.split(frames, idle_at))
            except Exception:  # a timeout or a broken page counts as an error of that session
                errors += 1
        errors += await page.locator('[data-testid="stException"]').count()
    finally:
        await ctx.close()
    return times, errors, splits


async def _concurrent(url: str, sessions: int, repeats: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            results = await asyncio.gather(*[_session(browser, url, repeats, i) for i in range(sessions)])
        finally:
            await browser.close()
    times = [t for ts, _, _ in results for t in ts]
    splits = [sp for _, _, sps in results for sp in sps if sp]
    return {"sessions": sessions, **(ms_stats(times) if times else {}), "errors": sum(e for _, e, _ in results),
            **({"split_p50": browser_timing.medians(splits)} if splits else {})}


COVID_BUNDLE_ENV = "CXR_EXPLORER_BENCH_COVID"  # a built covid bundle folder (cxr-explorer build)
PAIRS_BUNDLE_ENV = "CXR_EXPLORER_BENCH_PAIRS"  # a BioViL-T bundle built with --priors (times the Compare view)


def bundles_for(tmp: Path, n_items: int) -> dict[str, Path]:
    """The bundles to time: a synthetic ``n_items`` one (built here, map coordinates included) and the covid bundle
    named by ``$CXR_EXPLORER_BENCH_COVID`` when set."""
    from cxr_explorer.retrieval.bundle.store import has_bundle

    from benchmarks.app import synthetic_bundle

    out = {f"synthetic-{n_items}": synthetic_bundle(tmp / f"browser-{n_items}", n_items)}
    for name, env in (("covid", COVID_BUNDLE_ENV), ("covid-pairs", PAIRS_BUNDLE_ENV)):
        given = os.environ.get(env)
        if given and has_bundle(given):
            out = {name: Path(given), **out}
    return out


def run_browser(bundles: dict[str, Path], repeats: int = 5, sessions: int = 8) -> dict[str, Any]:
    """Per bundle: the action timings and the concurrent-sessions figures (see the module docstring)."""
    from cxr_explorer.retrieval.bundle.store import read_manifest
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        return {"status": "skipped", "reason": f"Chromium not found at {CHROMIUM}"}
    out: dict[str, Any] = {"note": "the user's input (the click or key press; a navigation: its request) -> the first "
                                   "frame with the result visible (images loaded, Streamlit idle), on the page's "
                                   "clock, headless Chromium on the same machine as the server; figures include the "
                                   "text encoder of the bundle's model; 'Playwright ms' is the whole span the driver "
                                   "saw (its fill and actionability checks before the click included)"}
    for name, bundle in bundles.items():
        manifest = read_manifest(bundle) or {}
        has_umap = "UMAP" in manifest.get("projections", {}).get("methods", {}).get("images", [])
        has_pairs = bool(manifest.get("temporal", {}).get("embedded"))
        with app_server(bundle) as url:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 800})
                    browser_timing.install(page)
                    timings = actions(page, url, repeats, has_umap, has_pairs)
                    cost = search_cost(browser, page, url, repeats, sessions)
                finally:
                    browser.close()
            concurrent = asyncio.run(_concurrent(url, sessions, max(2, repeats // 2)))
            server_only = concurrent_protocol(url, sessions, max(2, repeats // 2), QUERIES)
            alone = concurrent_protocol(url, 1, repeats, QUERIES)
        out[name] = {"items": int(manifest["count"]), "model": manifest["model"]["name"], "actions": timings,
                     "search_cost": cost, "search_server_alone": alone, "concurrent": concurrent,
                     "concurrent_protocol": server_only}
    return out


def main() -> None:
    """``python -m benchmarks.browser BUNDLE [BUNDLE ...]``: print the JSON figures of the given bundles
    (``$REPEATS`` per action, default 5; ``$SESSIONS`` concurrent sessions, default 8)."""
    import json

    bundles = {Path(b).name: Path(b) for b in sys.argv[1:]}
    print(json.dumps(run_browser(bundles, int(os.environ.get("REPEATS", "5")), int(os.environ.get("SESSIONS", "8"))),
                     indent=2))


if __name__ == "__main__":
    main()

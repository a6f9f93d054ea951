"""Concurrent sessions without the browsers: clients that speak Streamlit's own websocket protocol to the real app.

In the browser benchmark the eight Chromium pages render on the same two cores as the server, so their layout,
style and React work (about 250 ms of CPU a search, see ``benchmarks/results/latest.md``) is queued with the
server's. Deployed, each user's browser runs on the user's machine. These clients send what the page sends for a
search (a ``rerun_script`` back message whose query string holds the query, as the URL of a search does) and read
the forward messages until the run's ``script_finished``: the server does all of its work (session, page script,
search, cards, deltas, URL state) and nothing is rendered. A search counts as an error when its run showed an
exception or its results line ("… matching · text query “q”") never came.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

from benchmarks.browser_timing import FINISHED_EARLY_FOR_RERUN
from benchmarks.common import ms_stats


async def _run(ws: Any, query_string: str, expect: str | None) -> tuple[float, bool]:
    """Ask for one run with ``query_string``; (seconds to its script_finished, whether it went right: no
    exception element and, when ``expect`` is given, a Markdown element naming it with "matching")."""
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


async def _session(url: str, queries: list[str], ready: asyncio.Barrier) -> tuple[list[float], int]:
    """One session: the app's first page (untimed), then, once every session has its page (``ready``), one search
    per query, back to back; (seconds each, errors)."""
    import websockets
    from websockets.typing import Subprotocol

    times, errors = [], 0
    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream",
                                  subprotocols=[Subprotocol("streamlit")],
                                  max_size=None, open_timeout=120) as ws:
        await asyncio.wait_for(_run(ws, "", None), 180)
        await ready.wait()
        for q in queries:
            try:
                seconds, ok = await asyncio.wait_for(_run(ws, urlencode({"q": q}), q), 120)
            except (TimeoutError, OSError):
                errors += 1
                continue
            times.append(seconds)
            errors += not ok
    return times, errors


async def _all(url: str, sessions: int, repeats: int, queries: list[str]) -> list[tuple[list[float], int]]:
    plans = [[f"{queries[(i + s) % len(queries)]} p{s} {i}" for i in range(repeats)] for s in range(sessions)]
    ready = asyncio.Barrier(sessions)
    return list(await asyncio.gather(*[_session(url, plan, ready) for plan in plans]))


def concurrent_protocol(url: str, sessions: int, repeats: int, queries: list[str]) -> dict[str, Any]:
    """``sessions`` protocol clients, each running ``repeats`` searches, all starting together: p50/p95 (ms) of the
    request to the run's end, and errors."""
    results = asyncio.run(_all(url, sessions, repeats, queries))
    times = [t for ts, _ in results for t in ts]
    return {"sessions": sessions, **(ms_stats(times) if times else {}), "errors": sum(e for _, e in results)}

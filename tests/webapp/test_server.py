"""The server's middleware: a websocket request that reaches the app as plain HTTP (a proxy removed its upgrade)
is one log line and a 426 naming the fix; other requests pass through untouched."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.testclient import TestClient

from cxr_explorer.webapp.server import UpgradeCheck


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"app"})


def test_a_stripped_websocket_upgrade_is_one_line_and_a_426(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(UpgradeCheck(_ok))
    with caplog.at_level(logging.WARNING, logger="cxr_explorer.server"):
        stripped = client.get("/_stcore/stream")
    assert stripped.status_code == 426 and "WebSocket" in stripped.text and "docs/deploy.md" in stripped.text
    lines = [r.getMessage() for r in caplog.records if r.name == "cxr_explorer.server"]
    assert len(lines) == 1 and "Upgrade" in lines[0] and "\n" not in lines[0]
    assert client.get("/").text == "app" and client.get("/_stcore/health").text == "app"

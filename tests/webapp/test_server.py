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


def _gate(tmp_path: Any) -> tuple[TestClient, str]:
    """The gate in front of a page-shell app, and a valid sign-in cookie of a listed viewer."""
    import json

    from streamlit.web.server.starlette.starlette_app_utils import create_signed_value

    from cxr_explorer.webapp.access import load
    from cxr_explorer.webapp.server import USER_COOKIE, SessionGate
    from tests.e2e import oidc

    auth = oidc.auth_file(tmp_path / "auth.toml", "http://127.0.0.1:9/.well-known/openid-configuration", "cxr",
                          "shh", "http://127.0.0.1:8501/oauth2callback")
    claims = json.dumps({"email": "ana@hospital.org", "email_verified": True, "is_logged_in": True})
    cookie = f"{USER_COOKIE}={create_signed_value(oidc.COOKIE_SECRET, USER_COOKIE, claims).decode()}"
    return TestClient(SessionGate(_ok, load(auth)), follow_redirects=False), cookie


OPEN = {"sec-fetch-dest": "document"}


def test_a_page_link_opened_signed_out_is_where_sign_in_returns(tmp_path: Any) -> None:
    from cxr_explorer.webapp.server import RETURN_COOKIE

    client, signed_in = _gate(tmp_path)
    asked = client.get("/map?bundle=covid&q=%E5%B7%A6%20effusion", headers=OPEN)
    assert asked.status_code == 200 and asked.text == "app"  # the shell: its session draws the sign-in page
    kept = asked.cookies[RETURN_COOKIE]
    assert "HttpOnly" in asked.headers["set-cookie"] and "Max-Age=600" in asked.headers["set-cookie"]
    assert RETURN_COOKIE not in client.get("/favicon.png", headers={"sec-fetch-dest": "image"}).cookies
    assert RETURN_COOKIE not in client.get("/", headers=OPEN).cookies  # the bare root is not a link worth keeping
    back = client.get("/", headers={**OPEN, "cookie": f"{signed_in}; {RETURN_COOKIE}={kept}"})
    assert back.status_code == 303 and back.headers["location"] == "/map?bundle=covid&q=%E5%B7%A6%20effusion"
    assert f"{RETURN_COOKIE}=;" in back.headers["set-cookie"] and "Max-Age=0" in back.headers["set-cookie"]
    assert client.get("/", headers={**OPEN, "cookie": signed_in}).text == "app"  # nothing kept: the root itself


@pytest.mark.parametrize("kept", ["%2F%2Fevil.example%2Fx", "https%3A%2F%2Fevil.example", "%2F%5Cevil.example",
                                  "%2Fmap%0D%0ALocation%3A%20x", "%2Fmedia%2Fabc.png", "%2F", "map", ""])
def test_a_return_cookie_that_is_not_a_page_here_is_dropped_not_followed(tmp_path: Any, kept: str) -> None:
    from cxr_explorer.webapp.server import RETURN_COOKIE

    client, signed_in = _gate(tmp_path)
    got = client.get("/", headers={**OPEN, "cookie": f"{signed_in}; {RETURN_COOKIE}={kept}"})
    assert got.status_code == 200 and got.text == "app" and "location" not in got.headers

"""The app's ASGI server: Streamlit's ``st.App`` around ``app.py``, started by ``cxr-explorer app`` as
``streamlit run webapp/server.py`` (Streamlit finds the ``app`` object and serves it with uvicorn), with two
middlewares in front of Streamlit's own routes.

``BackendBase`` tells every HTML page where the server's root is (``window.__streamlit.BACKEND_BASE_URL``). Without
it, the browser opening a page link such as ``/map`` directly first probes ``/map/_stcore/health`` and
``/map/_stcore/host-config`` (two 404s in the console) before it tries the root.

``SessionGate`` is there only with sign-in on (``$CXR_EXPLORER_AUTH`` names the operator's auth file, see
``webapp/access.py``). It decides from Streamlit's signed sign-in cookie alone, before any route runs:

- open to everyone: the page shell (the same static HTML for every path), ``/static/...``, the sign-in routes, and
  ``_stcore/health``, ``_stcore/host-config`` and the websocket ``_stcore/stream`` (its session runs ``app.py``,
  whose guard, ``webapp/auth.py``, draws only the sign-in page until the person is signed in and listed);
- everything else (``/media/...`` images, uploads, components, metrics, any other route) needs a cookie that is
  correctly signed, younger than the auth file's ``session_hours``, and of a person on an allow-list; otherwise
  401/403 with one plain line and no case data;
- a cookie that is tampered with or expired is removed from the request before Streamlit reads it, so the session
  sees a signed-out user;
- the sign-in routes' failures (provider down, wrong client secret, a token refused for clock skew) end on a plain
  page that says what to do, with one line in the server log (no traceback);
- a signed-out visitor who opens a page link (``/map?bundle=...``) is sent back to it after signing in: the link is
  kept for ``RETURN_MAX_AGE_S`` in a cookie of its own (a path on this server only, never another site), and the
  provider's return to ``/`` is redirected to it once.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import streamlit as st
from starlette.middleware import Middleware

from cxr_explorer.webapp import access
from cxr_explorer.webapp.settings import AUTH_ENV

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

APP_FILE = Path(__file__).resolve().parent / "app.py"
USER_COOKIE = "_streamlit_user"
TOKENS_COOKIE = "_streamlit_user_tokens"
SIGN_IN_ROUTES = ("/auth/login", "/auth/logout", "/oauth2callback")
OPEN_STCORE = ("/_stcore/health", "/_stcore/host-config", "/_stcore/stream")
ASSET_PREFIXES = ("/static/", "/_stcore/", "/media/", "/component/", "/app/static/", "/auth/", "/oauth2callback")
RETURN_COOKIE = "cxr_explorer_return"
RETURN_MAX_AGE_S = 600
BASE_SCRIPT = b'<script>window.__streamlit={BACKEND_BASE_URL:window.location.origin+"/"}</script>'
LOG = logging.getLogger("cxr_explorer.server")


def is_page(path: str) -> bool:
    """Whether ``path`` asks for the page shell (``/``, ``/map``, ...) or one of the shell's own root files (its
    favicon and web-app manifest) rather than an asset, case media or an endpoint."""
    return not path.startswith(ASSET_PREFIXES)


async def _send_text(send: Send, status: int, text: str, html: bool = False,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode("utf-8")
    kind = b"text/html; charset=utf-8" if html else b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BackendBase:
    """Adds ``BASE_SCRIPT`` to the head of every page shell (asked for uncompressed, so the head can be edited)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"])
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def edit(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body" or not start:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            headers = list(start.get("headers", []))
            if dict(headers).get(b"content-type", b"").startswith(b"text/html") and b"<head>" in body:
                body = body.replace(b"<head>", b"<head>" + BASE_SCRIPT, 1)
                headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, edit)


def _cookies(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        if key.lower() == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, sep, val = part.strip().partition("=")
                if sep:
                    out[name] = val.strip('"')
    return out


def _without_auth_cookies(scope: Scope) -> Scope:
    """The request with the sign-in cookies (and their chunks) removed."""
    kept = []
    for key, value in scope["headers"]:
        if key.lower() == b"cookie":
            parts = [p for p in value.decode("latin-1").split(";")
                     if not p.strip().split("=", 1)[0].startswith(USER_COOKIE)]
            if not parts:
                continue
            value = ";".join(parts).encode("latin-1")
        kept.append((key, value))
    return dict(scope, headers=kept)


def signed_in_claims(cfg: access.AuthConfig, cookies: dict[str, str]) -> dict[str, Any] | None:
    """The claims in the sign-in cookie when it is correctly signed and younger than ``session_hours``, else None."""
    from streamlit.auth_util import get_cookie_with_chunks
    from streamlit.web.server.starlette.starlette_app_utils import decode_signed_value

    if USER_COOKIE not in cookies:
        return None

    def one(name: str) -> bytes | None:
        raw = cookies.get(name)
        if raw is None:
            return None
        return decode_signed_value(cfg.cookie_secret, name, raw.encode("latin-1"),
                                   max_age_days=cfg.session_hours / 24)

    try:
        decoded = get_cookie_with_chunks(one, USER_COOKIE)
        claims = json.loads(decoded) if decoded else None
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) and claims.get("is_logged_in") is True else None


def return_target(raw: str | None) -> str | None:
    """The page link kept in the return cookie, when it is a page of this server other than the bare root (a
    percent-encoded path and query: printable ASCII, no scheme, host or backslash), else None."""
    if not raw:
        return None
    target = urllib.parse.unquote(raw)
    path = target.partition("?")[0]
    if (not target.startswith("/") or target.startswith("//") or "\\" in target or target == "/"
            or any(not 32 < ord(c) < 127 for c in target) or not is_page(path)):
        return None
    return target


def _is_navigation(scope: Scope) -> bool:
    """Whether the request is the browser opening a page (not a script's fetch of the favicon or manifest)."""
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    if b"sec-fetch-dest" in headers:
        return headers[b"sec-fetch-dest"] == b"document"
    return b"text/html" in headers.get(b"accept", b"")


def _return_cookie(value: str, max_age: int) -> tuple[bytes, bytes]:
    return (b"set-cookie", f"{RETURN_COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax".encode())


SIGN_IN_FAILED = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cxr-explorer: sign-in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em">
<h1>Sign-in did not complete</h1><p>{reason}</p><p><a href="/">Back to the sign-in page</a></p>
<p><small>Research use only.</small></p></body></html>"""
PROVIDER_UNREACHABLE = ("The identity provider could not be reached or refused this server. Try again in a few "
                        "minutes; if it persists, tell the operator (the server log says why).")
CALLBACK_REFUSED = ("The identity provider's answer was refused (an expired or replayed sign-in, a wrong client "
                    "secret, or clocks that disagree). Try again; if it persists, tell the operator (the server log "
                    "says why).")


class SessionGate:
    """Refuses every endpoint that can carry case data to a request without a valid, listed sign-in (see the
    module docstring for what stays open)."""

    def __init__(self, app: ASGIApp, config: access.AuthConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        cookies = _cookies(scope)
        claims = signed_in_claims(self.config, cookies)
        if claims is None and USER_COOKIE in cookies:
            scope = _without_auth_cookies(scope)  # tampered or expired: Streamlit sees a signed-out user
        if path in SIGN_IN_ROUTES:
            await self._sign_in_route(scope, receive, send)
            return
        listed = claims is not None and self.config.role(claims) is not None
        if scope["type"] == "http" and scope.get("method") == "GET" and is_page(path) and _is_navigation(scope):
            await self._page(scope, receive, send, listed, cookies.get(RETURN_COOKIE))
            return
        if path in OPEN_STCORE or path.startswith("/static/") or is_page(path):
            await self.app(scope, receive, send)
            return
        if listed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        status, line = (401, "Sign in first.") if claims is None else (403, "Your account is not on the access list.")
        await _send_text(send, status, line)

    async def _page(self, scope: Scope, receive: Receive, send: Send, listed: bool, kept: str | None) -> None:
        """A page opened in the browser: signed out, remember the link it asked for; signed in and back at the bare
        root with a link remembered, go to that link (once)."""
        query = scope.get("query_string", b"").decode("latin-1")
        raw_path = scope.get("raw_path") or urllib.parse.quote(scope["path"]).encode("ascii")
        link = raw_path.decode("latin-1") + (f"?{query}" if query else "")  # as the browser sent it: percent-encoded
        extra: list[tuple[bytes, bytes]] = []
        if not listed and link != "/":
            extra.append(_return_cookie(urllib.parse.quote(link, safe=""), RETURN_MAX_AGE_S))
        elif listed and kept is not None:
            target = return_target(kept)
            if link == "/" and target is not None:
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", target.encode("ascii")), (b"content-length", b"0"),
                                        (b"cache-control", b"no-store"), _return_cookie("", 0)]})
                await send({"type": "http.response.body", "body": b""})
                return
            extra.append(_return_cookie("", 0))
        if not extra:
            await self.app(scope, receive, send)
            return

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_cookie)

    async def _sign_in_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Streamlit's sign-in route, its failures turned into a plain page and one log line."""
        path = scope["path"]
        start: dict[str, Any] = {}
        held: list[Message] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            held.append(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # any failure of the provider round trip: one line, never a traceback
            LOG.error("sign-in: %s failed: %s: %s", path, type(exc).__name__, exc)
            await _send_text(send, 503, SIGN_IN_FAILED.format(reason=PROVIDER_UNREACHABLE), html=True)
            return
        status = int(start.get("status", 500))
        sets_user = any(k.lower() == b"set-cookie" and v.startswith(USER_COOKIE.encode() + b"=")
                        and not v.startswith(USER_COOKIE.encode() + b'=""') and b"Max-Age=0" not in v
                        for k, v in start.get("headers", []))  # a deleted cookie is set empty, with Max-Age=0
        if path == "/auth/login" and status >= 400:
            LOG.error("sign-in: the identity provider at %s could not be used (see the line above)",
                      self.config.provider["server_metadata_url"])
            await _send_text(send, 503, SIGN_IN_FAILED.format(reason=PROVIDER_UNREACHABLE), html=True)
            return
        query = scope.get("query_string", b"")
        answered = any(part.split(b"=", 1)[0] in (b"code", b"error") for part in query.split(b"&"))
        if path == "/oauth2callback" and answered and not sets_user:  # without code or error: back from sign-out
            LOG.error("sign-in: the provider's callback did not sign anyone in (see the line above)")
            clear = [(b"set-cookie", f"{name}=; Max-Age=0; Path=/".encode()) for name in (USER_COOKIE, TOKENS_COOKIE)]
            await _send_text(send, 401, SIGN_IN_FAILED.format(reason=CALLBACK_REFUSED), html=True, headers=clear)
            return
        for message in held:
            await send(message)


class UpgradeCheck:
    """A request for the websocket endpoint that arrives as plain HTTP: something in front (a proxy) removed its
    ``Upgrade`` header. One line in the log saying so, and a 426 answer naming the fix, instead of Streamlit's
    silent 400 and a page that never connects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/_stcore/stream"):
            LOG.warning("websocket upgrade missing on %s from %s: the proxy in front must pass the Upgrade and "
                        "Connection headers (docs/deploy.md, Proxy and TLS)", scope["path"],
                        (scope.get("client") or ("?",))[0])
            await _send_text(send, 426, "This app needs a WebSocket connection, and the proxy in front of it removed "
                             "the upgrade. Ask the operator to pass WebSocket upgrades (docs/deploy.md).",
                             headers=[(b"upgrade", b"websocket"), (b"connection", b"Upgrade")])
            return
        await self.app(scope, receive, send)


class OneLine(logging.Filter):
    """Folds a logged traceback into the message's one line (the sign-in routes log the provider's failures with
    their traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}".replace("\n", " ")
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def auth_config() -> access.AuthConfig | None:
    """The auth file named by ``$CXR_EXPLORER_AUTH`` (checked by the CLI before start), or None: no sign-in."""
    path = os.environ.get(AUTH_ENV)
    return access.load(path) if path else None


def middleware(config: access.AuthConfig | None) -> list[Middleware]:
    """``UpgradeCheck`` and ``BackendBase`` always; ``SessionGate`` with sign-in on (its sign-in routes' tracebacks
    folded to one line)."""
    if config is None:
        return [Middleware(UpgradeCheck), Middleware(BackendBase)]
    for name in ("streamlit.web.server.starlette.starlette_auth_routes", "streamlit.auth_util"):
        logging.getLogger(name).addFilter(OneLine())
    return [Middleware(UpgradeCheck), Middleware(BackendBase), Middleware(SessionGate, config=config)]


CONFIG = auth_config()
# ``streamlit run`` serves this file's ``app`` as an ASGI app only when it is assigned from ``st.App(...)`` itself
# (it finds it by reading the source)
app = st.App(APP_FILE, middleware=middleware(CONFIG), secrets=CONFIG.streamlit_secrets() if CONFIG else None)

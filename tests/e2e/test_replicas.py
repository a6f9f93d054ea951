"""``cxr-explorer serve --replicas 2`` with the real Caddy: HTTPS verified against Caddy's internal CA, a Chromium
session that stays on one replica (sticky cookie, websocket through the proxy), and that replica killed mid-session:
the page reconnects through the proxy to the other replica and redraws the search, and serve restarts the killed
one. Chromium itself is told to accept the certificate (it has no API to add a CA); the verification against the
CA is Python's."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import DESKTOP, E2E_LABELS, E2E_REPORTS, TIMEOUT_MS, free_port, main, open_app, search, settle
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.processes import alive
from tests.helpers.synthetic import tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("caddy") is None,
                                                   reason="caddy is not installed (apt-get install caddy)")]


def _wait(check: Any, what: str, proc: subprocess.Popen, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited with code {proc.returncode} while waiting for {what}"
        try:
            got = check()
        except (OSError, ValueError, KeyError):
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, ssl.SSLContext]]:
    """(https url, state dir, an SSL context trusting only Caddy's internal CA) of serve with two replicas."""
    root = tmp_path_factory.mktemp("replicas")
    bundle = model_bundle(root, tiny_model(), APP_CASES, reports=E2E_REPORTS, labels=E2E_LABELS)
    state = root / "state"
    port = free_port()
    exe = shutil.which("cxr-explorer") or str(Path(sys.executable).parent / "cxr-explorer")
    with open(root / "serve.log", "wb") as log:
        proc = subprocess.Popen([exe, "serve", "--replicas", "2", "--listen", f"127.0.0.1:{port}", "--tls",
                                 "internal", "--state-dir", str(state), "--", str(bundle)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ca = state / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        _wait(ca.exists, "Caddy's root certificate", proc)
        context = ssl.create_default_context(cafile=str(ca))
        url = f"https://localhost:{port}"

        def healthy() -> bool:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=3, context=context) as resp:
                return resp.status == 200

        _wait(healthy, "the proxied health check", proc)
        for row in json.loads((state / "replicas.json").read_text()):
            _wait(lambda r=row: urllib.request.urlopen(f"http://127.0.0.1:{r['port']}/_stcore/health", timeout=3),
                  f"replica {row['replica']}", proc)
        yield url, state, context
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        assert proc.returncode == 0, (root / "serve.log").read_text()
        rows = json.loads((state / "replicas.json").read_text())
        assert not any(alive(r["pid"]) for r in rows)  # serve stopped its replicas


def test_tls_is_verified_against_the_internal_ca_and_plain_http_is_refused(served) -> None:
    url, _, context = served
    with urllib.request.urlopen(url + "/_stcore/health", timeout=5, context=context) as resp:
        assert resp.read() == b"ok"
    with pytest.raises(urllib.error.URLError):  # the system's CAs do not trust it: no silent fallback
        urllib.request.urlopen(url + "/_stcore/health", timeout=5, context=ssl.create_default_context())


def test_a_session_survives_its_replica_being_killed(chromium, served) -> None:
    url, state, _ = served
    context = chromium.new_context(viewport=DESKTOP, ignore_https_errors=True)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        open_app(page, url, expect_text="Type a query")
        search(page, "pleural effusion")
        cookie = next(c["value"] for c in context.cookies() if c["name"] == "cxr_replica")
        rows = json.loads((state / "replicas.json").read_text())
        # Caddy's cookie policy stores HMAC-SHA256(secret, upstream address) (no secret: an empty key)
        mine = next(r for r in rows if hmac.new(b"", f"127.0.0.1:{r['port']}".encode(), hashlib.sha256).hexdigest()
                    == cookie)
        os.kill(mine["pid"], signal.SIGKILL)
        # the page's websocket drops; it reconnects through the proxy, which sends it to the other replica
        deadline = time.monotonic() + 60
        while next(c["value"] for c in context.cookies() if c["name"] == "cxr_replica") == cookie:
            assert time.monotonic() < deadline, "the page did not reconnect to the other replica"
            page.wait_for_timeout(250)
        # a new server session: the next run restores the search from the page's URL, then searches go on
        page.get_by_role("button", name="Search", exact=True).click()
        expect(main(page).get_by_text("query “pleural effusion", exact=False).first).to_be_visible()
        settle(page)
        search(page, "edema")
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)

        def restarted() -> bool:
            now = json.loads((state / "replicas.json").read_text())[mine["replica"]]
            return now["restarts"] == 1 and now["pid"] != mine["pid"] and alive(now["pid"])

        deadline = time.monotonic() + 60
        while not restarted():
            assert time.monotonic() < deadline, "serve did not restart the killed replica"
            time.sleep(0.5)
        log = (state / "logs").parent.parent / "serve.log"
        assert f"replica {mine['replica']} (port {mine['port']}) exited" in log.read_text()
    finally:
        context.close()

"""A real OpenID Connect provider for the sign-in tests: PyPI's ``oidc-provider-mock`` (Authlib's provider behind
Flask, in a thread of the test process), with client registration required, so a wrong client secret is refused as
a real provider refuses it. Its users and their claims are set per test; ``auth_file`` writes the app's auth file."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

COOKIE_NAME = "_streamlit_user"
COOKIE_SECRET = "test-cookie-secret-" + "x" * 32
VIEWER = "reader@hospital.org"
CURATOR = "lead@hospital.org"
OUTSIDER = "someone@elsewhere.org"
UNVERIFIED = "unverified@hospital.org"


@dataclass
class Provider:
    """A running provider: its base URL and the registered client."""

    url: str
    client_id: str
    client_secret: str
    server: Any

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"


def _users() -> list[Any]:
    from oidc_provider_mock import User

    return [User(sub=VIEWER, claims={"email": VIEWER, "email_verified": True}),
            User(sub=CURATOR, claims={"email": CURATOR, "email_verified": True}),
            User(sub=OUTSIDER, claims={"email": OUTSIDER, "email_verified": True}),
            User(sub=UNVERIFIED, claims={"email": UNVERIFIED, "email_verified": False})]


@contextlib.contextmanager
def provider(redirect_uri: str, token_max_age: timedelta = timedelta(hours=1)) -> Iterator[Provider]:
    """Start the provider on a free port and register one client for ``redirect_uri``."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(port=0, require_client_registration=True, access_token_max_age=token_max_age,
                              user_claims=_users()) as server:
        url = f"http://localhost:{server.server_port}"
        body = json.dumps({"redirect_uris": [redirect_uri]}).encode()
        req = urllib.request.Request(f"{url}/oauth2/clients", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            client = json.loads(resp.read())
        yield Provider(url, client["client_id"], client["client_secret"], server)


def auth_file(path: Path, metadata_url: str, client_id: str, client_secret: str, redirect_uri: str) -> Path:
    """The app's auth file: the viewer's domain as viewers, the curator's email as curators."""
    path.write_text(f"""[provider]
server_metadata_url = "{metadata_url}"
client_id = "{client_id}"
client_secret = "{client_secret}"
redirect_uri = "{redirect_uri}"
cookie_secret = "{COOKIE_SECRET}"
session_hours = 1

[viewers]
domains = ["hospital.org"]

[curators]
emails = ["{CURATOR}"]
""")
    return path


@contextlib.contextmanager
def serve_with_auth(bundle: Path, log_path: Path, port: int, auth: Path, *extra: str) -> Iterator[str]:
    """``cxr-explorer app BUNDLE --auth FILE`` on ``port`` (its redirect URI names that port), in its own process
    group; yields the base URL."""
    from tests.e2e.helpers import serve

    with serve([bundle], log_path, "--auth", str(auth), *extra, port=port) as url:
        yield url

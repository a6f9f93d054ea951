"""Sign-in end to end in Chromium against a real OpenID Connect provider started here (``tests/e2e/oidc.py``):
sign in and out, a person not on the list refused, a viewer refused the curator actions, a tampered or expired
cookie refused, no case data from any page, ``/media`` or ``_stcore`` endpoint without a session, and the faults
(provider down at start and mid-session, wrong client secret, a token refused for clock skew) ending on a plain
page with one log line and no traceback."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.e2e import oidc
from tests.e2e.helpers import DESKTOP, TIMEOUT_MS, free_port, search, settle
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.synthetic import tiny_model

SIGN_IN = "Sign in with your organisation's account"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_bundle(tmp_path_factory.mktemp("auth"), tiny_model(), APP_CASES)


@pytest.fixture(scope="module")
def site(bundle: Path, chromium: Any) -> Iterator[dict[str, Any]]:
    """The provider and an app with sign-in and an audit log on it."""
    root = bundle.parent
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    with oidc.provider(redirect) as prov:
        auth = oidc.auth_file(root / "auth.toml", prov.metadata_url, prov.client_id, prov.client_secret, redirect)
        audit = root / "audit.jsonl"
        with oidc.serve_with_auth(bundle, root / "server.log", port, auth, "--audit-log", str(audit)) as url:
            yield {"url": url, "provider": prov, "audit": audit, "log": root / "server.log", "root": root}


def _page(chromium: Any) -> Any:
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    return page


def _sign_in(page: Any, url: str, who: str, path: str = "") -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/{path}")
    expect(page.get_by_text(SIGN_IN)).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=who, exact=True).click()  # the provider's page: one button per known user
    page.wait_for_url(re.compile(re.escape(url) + r"/?$"))


def _sign_out(page: Any, url: str) -> None:
    """The sidebar's Sign out, through the provider's own end-of-session page, back to the app."""
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
    page.wait_for_url(lambda u: "end_session" in u)
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(lambda u: u.startswith(url))


def _get(url: str, cookie: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _cookie_header(page: Any) -> str:
    return "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())


def _no_case_data(body: bytes) -> None:
    text = body.decode("utf-8", "replace")
    for i, report in enumerate(APP_CASES.reports):
        assert f"case{i}" not in text and (not report or report[:30] not in text)  # model_bundle's ids: case<i>


def test_sign_in_search_and_sign_out(site: dict[str, Any], chromium: Any) -> None:
    from playwright.sync_api import expect

    page = _page(chromium)
    _sign_in(page, site["url"], oidc.VIEWER)
    expect(page.get_by_text(f"Signed in: {oidc.VIEWER} (viewer)")).to_be_visible()
    settle(page)
    page.get_by_label("Free text").fill("pleural effusion")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_text("query “pleural effusion", exact=False).first).to_be_visible()
    _sign_out(page, site["url"])
    expect(page.get_by_text(SIGN_IN)).to_be_visible()
    assert not any(c["name"] == oidc.COOKIE_NAME for c in page.context.cookies())
    entries = [json.loads(line) for line in site["audit"].read_text().splitlines()]
    mine = [e for e in entries if e["user"] == oidc.VIEWER]
    assert [e["action"] for e in mine][:2] == ["sign_in", "search"]
    assert mine[1]["query"] == "pleural effusion" and mine[1]["role"] == "viewer"
    page.context.close()


def test_a_link_opened_signed_out_is_where_sign_in_lands(site: dict[str, Any], chromium: Any) -> None:
    from playwright.sync_api import expect

    page = _page(chromium)
    page.goto(f"{site['url']}/?q=pleural%20effusion")
    expect(page.get_by_text(SIGN_IN)).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=oidc.VIEWER, exact=True).click()
    page.wait_for_url(re.compile(re.escape(site["url"]) + r"/\?q=pleural%20effusion$"))
    page.errors.clear()  # type: ignore[attr-defined]  # the provider's own page asks a CDN for its style sheet
    expect(page.get_by_text("query “pleural effusion", exact=False).first).to_be_visible()
    page.goto(site["url"])  # kept once: the root is the root again
    settle(page)
    assert page.url.rstrip("/") == site["url"] and not page.get_by_text("query “pleural effusion").count()
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


@pytest.mark.parametrize("who", [oidc.OUTSIDER, oidc.UNVERIFIED])
def test_a_person_not_on_the_list_is_refused(site: dict[str, Any], chromium: Any, who: str) -> None:
    from playwright.sync_api import expect

    page = _page(chromium)
    _sign_in(page, site["url"], who)
    expect(page.get_by_text("not on this server's access list")).to_be_visible()
    _no_case_data(page.content().encode())
    assert page.get_by_role("link", name="Search").count() == 0
    status, body = _get(f"{site['url']}/media/anything.png", _cookie_header(page))
    assert status == 403 and b"access list" in body
    page.context.close()


def test_viewer_is_refused_the_curator_actions_and_a_curator_decides_as_themself(site: dict[str, Any],
                                                                                 chromium: Any) -> None:
    from playwright.sync_api import expect

    viewer = _page(chromium)
    _sign_in(viewer, site["url"], oidc.VIEWER)
    viewer.goto(f"{site['url']}/curate")
    expect(viewer.get_by_text("Exports are for curators.")).to_be_visible()
    expect(viewer.get_by_text("deciding on cases is for curators")).to_be_visible()
    assert viewer.get_by_role("button", name="Cleaned manifest CSV").count() == 0
    assert viewer.get_by_label("Curator").count() == 0  # no typed name with sign-in on
    assert viewer.get_by_role("button", name="exclude").first.is_disabled()
    viewer.context.close()

    curator = _page(chromium)
    _sign_in(curator, site["url"], oidc.CURATOR)
    curator.goto(f"{site['url']}/curate")
    expect(curator.get_by_role("button", name="Cleaned manifest CSV")).to_be_visible()
    settle(curator)
    curator.get_by_role("button", name="exclude").first.click()
    settle(curator)
    reviews = list((site["root"]).glob("*.review/*.jsonl"))
    assert [p.name for p in reviews] == ["lead_hospital.org.jsonl"]
    decided = [json.loads(line) for line in site["audit"].read_text().splitlines()
               if json.loads(line)["action"] == "decide"]
    assert decided and decided[-1]["user"] == oidc.CURATOR and decided[-1]["decision"] == "exclude"
    curator.context.close()


def test_tampered_or_expired_cookie_is_refused(site: dict[str, Any], chromium: Any) -> None:
    from itsdangerous import URLSafeTimedSerializer
    from playwright.sync_api import expect

    page = _page(chromium)
    _sign_in(page, site["url"], oidc.VIEWER)
    settle(page)
    search(page, "pleural effusion")
    image = page.locator('[data-testid="stMain"] img[src*="/media/"]').first
    media = image.get_attribute("src") or ""
    media = media if media.startswith("http") else site["url"] + media
    cookie = next(c for c in page.context.cookies() if c["name"] == oidc.COOKIE_NAME)
    assert _get(media, f"{oidc.COOKIE_NAME}={cookie['value']}")[0] == 200
    claims = json.dumps({"email": oidc.VIEWER, "email_verified": True, "is_logged_in": True,
                         "origin": site["url"], "provider": "default"})
    serializer = URLSafeTimedSerializer(oidc.COOKIE_SECRET, salt=oidc.COOKIE_NAME)
    with mock.patch("itsdangerous.timed.time.time", return_value=time.time() - 2 * 3600):
        expired = serializer.dumps(claims)  # signed correctly, two hours ago; the file allows one
    forged = URLSafeTimedSerializer("not-the-secret-" + "y" * 32, salt=oidc.COOKIE_NAME).dumps(claims)
    tampered = cookie["value"][:-3] + ("aaa" if not cookie["value"].endswith("aaa") else "bbb")
    for value in (tampered, expired, forged):
        status, body = _get(media, f"{oidc.COOKIE_NAME}={value}")
        assert status == 401 and b"Sign in first" in body
        other = chromium.new_context(viewport=DESKTOP)
        other.add_cookies([{**cookie, "value": value}])
        p2 = other.new_page()
        p2.goto(site["url"])
        expect(p2.get_by_text(SIGN_IN)).to_be_visible()
        _no_case_data(p2.content().encode())
        other.close()
    page.context.close()


def test_no_session_gets_no_case_data_from_any_url(site: dict[str, Any], chromium: Any) -> None:
    url = site["url"]
    for path in ("", "search", "grounding", "compare", "map", "curate", "about", "search?q=effusion",
                 "no-such-page"):
        status, body = _get(f"{url}/{path}")
        assert status == 200
        _no_case_data(body)
    for path in ("media/0123abcd.png", "media/x.jpg", "_stcore/upload_file/s/f", "_stcore/metrics",
                 "component/x/index.html", "_stcore/something-else", "app/static/x"):
        status, body = _get(f"{url}/{path}")
        assert status == 401, path
        _no_case_data(body)
    assert _get(f"{url}/_stcore/health") == (200, b"ok")
    status, body = _get(f"{url}/_stcore/host-config")
    assert status == 200
    _no_case_data(body)
    page = _page(chromium)  # the websocket: the session draws the sign-in page only
    for path in ("", "map", "curate"):
        page.goto(f"{url}/{path}")
        from playwright.sync_api import expect

        expect(page.get_by_text(SIGN_IN)).to_be_visible()
        _no_case_data(page.content().encode())
        assert page.locator('img[src*="/media/"]').count() == 0
    page.context.close()


def _no_traceback(log: Path) -> str:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    return text


def test_provider_down_mid_session_keeps_the_session_and_fails_sign_in_plainly(bundle: Path, chromium: Any,
                                                                               tmp_path: Path) -> None:
    from playwright.sync_api import expect

    port = free_port()
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    log = tmp_path / "server.log"
    with oidc.provider(redirect) as prov:
        auth = oidc.auth_file(tmp_path / "auth.toml", prov.metadata_url, prov.client_id, prov.client_secret, redirect)
        with oidc.serve_with_auth(bundle, log, port, auth) as url:
            page = _page(chromium)
            _sign_in(page, url, oidc.VIEWER)
            prov.server.shutdown()  # the provider goes away mid-session
            page.goto(f"{url}/map")
            expect(page.get_by_text(f"Signed in: {oidc.VIEWER} (viewer)")).to_be_visible()
            page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
            expect(page.get_by_text(SIGN_IN)).to_be_visible()
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Sign-in did not complete")).to_be_visible()
            expect(page.get_by_text("could not be reached")).to_be_visible()
            page.context.close()
    text = _no_traceback(log)
    assert "sign-in: the identity provider at" in text


@pytest.mark.parametrize("fault", ["down at start", "wrong client secret", "clock skew"])
def test_sign_in_faults_end_on_a_plain_page_without_access(bundle: Path, chromium: Any, tmp_path: Path,
                                                           fault: str) -> None:
    from playwright.sync_api import expect

    port = free_port()
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    log = tmp_path / "server.log"
    max_age = timedelta(seconds=-600) if fault == "clock skew" else timedelta(hours=1)  # tokens from 10 min ahead
    with oidc.provider(redirect, token_max_age=max_age) as prov:
        metadata = prov.metadata_url
        secret = prov.client_secret + ("-wrong" if fault == "wrong client secret" else "")
        if fault == "down at start":
            metadata = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
        auth = oidc.auth_file(tmp_path / "auth.toml", metadata, prov.client_id, secret, redirect)
        with oidc.serve_with_auth(bundle, log, port, auth) as url:
            page = _page(chromium)
            page.goto(url)
            expect(page.get_by_text(SIGN_IN)).to_be_visible()
            page.get_by_role("button", name="Sign in").click()
            if fault != "down at start":
                page.get_by_role("button", name=oidc.VIEWER, exact=True).click()
            expect(page.get_by_text("Sign-in did not complete")).to_be_visible()
            page.goto(url)
            expect(page.get_by_text(SIGN_IN)).to_be_visible()
            assert not any(c["name"] == oidc.COOKIE_NAME for c in page.context.cookies())
            page.context.close()
    text = _no_traceback(log)
    assert len([line for line in text.splitlines() if "sign-in:" in line]) == 1

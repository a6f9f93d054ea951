"""Sign-in inside the app and the audit hooks: the guard that ``app.py`` runs before ``st.navigation``, the signed-in
person's role, and one ``record`` call per audited action.

With an auth file (``$CXR_EXPLORER_AUTH``), nothing past the guard runs until Streamlit's ``st.user`` says the person
is signed in through the operator's OpenID Connect provider and ``webapp/access.py`` gives their verified claims a
role. Viewers search, ground, map and compare; curators also decide on the Curate page and export. Without an auth
file everyone is a curator (the app is then on loopback, or the operator said ``--no-auth``). The server's gate
(``webapp/server.py``) keeps media and every other endpoint closed to requests without a listed sign-in.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from cxr_explorer.retrieval.audit.log import AuditLog, digest
from cxr_explorer.webapp import access
from cxr_explorer.webapp.display import RESEARCH_ONLY
from cxr_explorer.webapp.settings import AUDIT_ENV, AUTH_ENV

ANONYMOUS = "-"


@dataclass(frozen=True)
class Identity:
    """The signed-in person: their email (or subject) and role."""

    user: str
    role: access.Role

    @property
    def curator_name(self) -> str:
        """The name of this person's review file: the email with every character outside ``A-Za-z0-9_.-`` as
        ``_`` (``lead@hospital.org`` -> ``lead_hospital.org``), at most 40 characters."""
        return re.sub(r"[^A-Za-z0-9_.-]", "_", self.user).lstrip("_.-")[:40] or "user"


@st.cache_resource(show_spinner=False)
def _config(path: str) -> access.AuthConfig:
    return access.load(path)


def config() -> access.AuthConfig | None:
    """The auth file the server was started with, or None when sign-in is off."""
    path = os.environ.get(AUTH_ENV)
    return _config(path) if path else None


@st.cache_resource(show_spinner=False)
def _audit_log(spec: str) -> AuditLog:
    data = json.loads(spec)
    return AuditLog(Path(data["path"]), max_bytes=int(data["max_bytes"]), keep=int(data["keep"]),
                    redact_queries=bool(data["redact_queries"]))


def audit_log() -> AuditLog | None:
    """The audit log the server was started with, or None."""
    spec = os.environ.get(AUDIT_ENV)
    return _audit_log(spec) if spec else None


def identity() -> Identity | None:
    """The signed-in, listed person, or None (sign-in off, or not signed in, or not listed)."""
    cfg = config()
    if cfg is None or not st.user.is_logged_in:
        return None
    claims = st.user.to_dict()
    role = cfg.role(claims)
    if role is None:
        return None
    return Identity(str(claims.get("email") or claims.get("sub") or "unknown"), role)


def is_curator() -> bool:
    """May this session decide on the Curate page and export (always, with sign-in off)?"""
    if config() is None:
        return True
    who = identity()
    return who is not None and who.role == "curator"


def record(action: str, **details: Any) -> None:
    """One audit line for this session's action (nothing when no audit log is configured). Never raises: a log that
    cannot be written is one error line on the page, and the action itself stands."""
    log = audit_log()
    if log is None:
        return
    who = identity()
    user = who.user if who else str(details.pop("curator", "") or ANONYMOUS)
    role = who.role if who else ("curator" if config() is None else "none")
    if st.session_state.get("bundle_dir"):  # sign-in and refusal come before a bundle is chosen
        details.setdefault("bundle", Path(str(st.session_state["bundle_dir"])).name)
    try:
        log.record(user, role, action, **details)
    except OSError as exc:
        st.error(f"The audit log {log.path} cannot be written: {exc.strerror or exc}. Tell the operator.")


def record_once(action: str, **details: Any) -> None:
    """``record`` unless this session's last ``action`` had the same details (a page reruns on every click; the
    same query drawn again is not a new action). ``image`` bytes compare by digest."""
    if "image" in details:
        details["image_sha256"] = digest(bytes(details.pop("image")))
    signature = json.dumps(details, sort_keys=True, default=str)
    key = f"audit_last_{action}"
    if st.session_state.get(key) == signature:
        return
    st.session_state[key] = signature
    record(action, **details)


def _sign_in_page(cfg: access.AuthConfig) -> None:
    st.title("cxr-explorer")
    st.write("Sign in with your organisation's account to see the cases.")
    st.button("Sign in", type="primary", on_click=st.login)
    st.caption(RESEARCH_ONLY)


def guard() -> None:
    """Stops the run unless sign-in is off or the person is signed in and listed; draws who is signed in and the
    sign-out button in the sidebar. Sign-in and refusal are audited once per session."""
    cfg = config()
    if cfg is None:
        return
    if not st.user.is_logged_in:
        _sign_in_page(cfg)
        st.stop()
    who = identity()
    claims = st.user.to_dict()
    if who is None:
        if not st.session_state.get("auth_refused_logged"):
            st.session_state["auth_refused_logged"] = True
            record("refused", curator=str(claims.get("email") or claims.get("sub") or ANONYMOUS))
        st.title("cxr-explorer")
        st.error("Your account is not on this server's access list (a verified email, domain or group that the "
                 "operator allowed). Ask the operator to add you.")
        st.button("Sign out", on_click=st.logout)
        st.caption(RESEARCH_ONLY)
        st.stop()
    if st.session_state.get("auth_signed_in") != who.user:
        st.session_state["auth_signed_in"] = who.user
        record("sign_in")
    st.sidebar.text(f"Signed in: {who.user} ({who.role})")
    st.sidebar.button("Sign out", on_click=st.logout, key="auth_sign_out")

"""Who may use the app, from the operator's auth file: the OpenID Connect provider, and allow-lists on verified claims
that give each signed-in person one of two roles.

The file is TOML, owned by the operator (``cxr-explorer app --auth FILE``)::

    [provider]
    server_metadata_url = "https://idp.example.org/.well-known/openid-configuration"
    client_id = "cxr-explorer"
    client_secret = "..."
    redirect_uri = "https://cxr.example.org/oauth2callback"
    cookie_secret = "a long random string"      # signs the sign-in cookie
    # group_claim = "groups"                    # the claim that lists a person's groups (default "groups")
    # session_hours = 12                        # a sign-in older than this must sign in again (default 12)

    [viewers]                                   # search, ground, map, compare
    emails = ["a.reader@hospital.org"]
    domains = ["hospital.org"]
    groups = ["radiology"]

    [curators]                                  # also Curate decisions and exports
    emails = ["lead@hospital.org"]
    groups = ["cxr-curators"]

An email or a domain counts only when the provider says the email is verified (``email_verified`` true); a group
counts as the provider sends it. Curators are viewers too. Nobody is allowed by default. No Streamlit import here: the
CLI checks the file before the server starts, and the server's gate reads it per request.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Role = Literal["viewer", "curator"]
PROVIDER_KEYS = ("server_metadata_url", "client_id", "client_secret", "redirect_uri", "cookie_secret")
MIN_COOKIE_SECRET = 32
DEFAULT_SESSION_HOURS = 12.0


class AccessError(ValueError):
    """The auth file is missing, unreadable or incomplete (one line naming the file and the field)."""


@dataclass(frozen=True)
class AllowList:
    """Who one role admits: exact emails, email domains, and group names (all compared case-insensitively)."""

    emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def admits(self, claims: Mapping[str, Any], group_claim: str) -> bool:
        """Whether the verified claims name a listed email, an email in a listed domain, or a listed group."""
        email = str(claims.get("email") or "").strip().lower()
        if email and claims.get("email_verified") is True:
            if email in self.emails or email.rpartition("@")[2] in self.domains:
                return True
        groups = claims.get(group_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        return any(str(g).strip().lower() in self.groups for g in groups if isinstance(g, (str, int)))


@dataclass(frozen=True)
class AuthConfig:
    """The operator's auth file, checked: provider settings and the two allow-lists."""

    path: Path
    provider: dict[str, str]
    viewers: AllowList
    curators: AllowList
    group_claim: str = "groups"
    session_hours: float = DEFAULT_SESSION_HOURS

    @property
    def cookie_secret(self) -> str:
        return self.provider["cookie_secret"]

    def role(self, claims: Mapping[str, Any]) -> Role | None:
        """``curator``, ``viewer``, or None when neither list admits these claims."""
        if self.curators.admits(claims, self.group_claim):
            return "curator"
        if self.viewers.admits(claims, self.group_claim):
            return "viewer"
        return None

    def streamlit_secrets(self) -> dict[str, Any]:
        """The ``[auth]`` secrets section Streamlit's ``st.login`` reads (one default provider)."""
        return {"auth": dict(self.provider)}


def _allow_list(path: Path, data: Mapping[str, Any], section: str) -> AllowList:
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise AccessError(f"auth file {path}: [{section}] must be a table")
    unknown = sorted(set(table) - {"emails", "domains", "groups"})
    if unknown:
        raise AccessError(f"auth file {path}: unknown key {unknown[0]!r} in [{section}] (emails, domains, groups)")
    out: dict[str, frozenset[str]] = {}
    for key in ("emails", "domains", "groups"):
        values = table.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise AccessError(f"auth file {path}: [{section}] {key} must be a list of non-empty strings")
        out[key] = frozenset(v.strip().lower().lstrip("@") if key == "domains" else v.strip().lower() for v in values)
    return AllowList(**out)


def load(path: str | Path) -> AuthConfig:
    """Read and check the auth file; :class:`AccessError` names the file and the first problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccessError(f"auth file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessError(f"auth file {p} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccessError(f"auth file {p} is not valid TOML: {exc}") from None
    provider = data.get("provider")
    if not isinstance(provider, dict):
        raise AccessError(f"auth file {p} has no [provider] table")
    extra = {"group_claim", "session_hours"}
    unknown = sorted(set(provider) - set(PROVIDER_KEYS) - extra)
    if unknown:
        raise AccessError(f"auth file {p}: unknown key {unknown[0]!r} in [provider]")
    for key in PROVIDER_KEYS:
        if not isinstance(provider.get(key), str) or not provider[key].strip():
            raise AccessError(f"auth file {p}: [provider] {key} is missing")
    if len(provider["cookie_secret"]) < MIN_COOKIE_SECRET:
        raise AccessError(f"auth file {p}: [provider] cookie_secret must be at least {MIN_COOKIE_SECRET} characters "
                          "(e.g. the output of `openssl rand -hex 32`)")
    for key in ("server_metadata_url", "redirect_uri"):
        if not provider[key].startswith(("https://", "http://")):
            raise AccessError(f"auth file {p}: [provider] {key} must be an http(s) URL")
    group_claim = provider.get("group_claim", "groups")
    hours = provider.get("session_hours", DEFAULT_SESSION_HOURS)
    if not isinstance(group_claim, str) or not group_claim:
        raise AccessError(f"auth file {p}: [provider] group_claim must be a claim name")
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 30:
        raise AccessError(f"auth file {p}: [provider] session_hours must be a number of hours, 0 < h <= 720")
    unknown_sections = sorted(set(data) - {"provider", "viewers", "curators"})
    if unknown_sections:
        raise AccessError(f"auth file {p}: unknown table [{unknown_sections[0]}] (provider, viewers, curators)")
    viewers, curators = _allow_list(p, data, "viewers"), _allow_list(p, data, "curators")
    if not any((viewers.emails, viewers.domains, viewers.groups, curators.emails, curators.domains, curators.groups)):
        raise AccessError(f"auth file {p}: [viewers] and [curators] admit nobody")
    return AuthConfig(path=p, provider={k: provider[k].strip() for k in PROVIDER_KEYS}, viewers=viewers,
                      curators=curators, group_claim=group_claim, session_hours=float(hours))

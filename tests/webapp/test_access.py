"""The operator's auth file: checked in one line per problem; allow-lists admit only verified claims; two roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxr_explorer.webapp.access import AccessError, load

SECRET = "s" * 40
PROVIDER = f"""[provider]
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
client_id = "cxr"
client_secret = "shh"
redirect_uri = "http://127.0.0.1:8501/oauth2callback"
cookie_secret = "{SECRET}"
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "auth.toml"
    path.write_text(text)
    return path


def test_roles_from_verified_email_domain_and_group(tmp_path: Path) -> None:
    cfg = load(_file(tmp_path, PROVIDER + '[viewers]\ndomains = ["hospital.org"]\n'
                     '[curators]\nemails = ["Lead@Hospital.org"]\ngroups = ["cxr-curators"]\n'))
    assert cfg.role({"email": "reader@hospital.org", "email_verified": True}) == "viewer"
    assert cfg.role({"email": "lead@hospital.org", "email_verified": True}) == "curator"
    assert cfg.role({"email": "x@other.org", "email_verified": True, "groups": ["cxr-curators"]}) == "curator"
    assert cfg.role({"email": "reader@hospital.org", "email_verified": False}) is None
    assert cfg.role({"email": "reader@hospital.org"}) is None  # unverified: not on any list
    assert cfg.role({"email": "x@evil-hospital.org", "email_verified": True}) is None
    assert cfg.role({}) is None
    assert cfg.streamlit_secrets()["auth"]["cookie_secret"] == SECRET


@pytest.mark.parametrize(("text", "message"), [
    (None, "does not exist"),
    ("[provider\n", "not valid TOML"),
    ('[viewers]\nemails = ["a@b.c"]\n', "no \\[provider\\] table"),
    (PROVIDER.replace('client_secret = "shh"\n', "") + '[viewers]\nemails = ["a@b.c"]\n', "client_secret is missing"),
    (PROVIDER.replace(SECRET, "short") + '[viewers]\nemails = ["a@b.c"]\n', "at least 32"),
    (PROVIDER, "admit nobody"),
    (PROVIDER + '[viewers]\nemail = ["a@b.c"]\n', "unknown key 'email'"),
    (PROVIDER + '[viewers]\nemails = "a@b.c"\n', "must be a list"),
    (PROVIDER + '[admins]\nemails = ["a@b.c"]\n', "unknown table"),
])
def test_bad_files_give_one_line_naming_the_problem(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "auth.toml" if text is None else _file(tmp_path, text)
    with pytest.raises(AccessError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)

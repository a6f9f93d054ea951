"""``cxr-explorer app``'s sign-in and audit options, checked before the server starts (one line each), and
``cxr-explorer audit`` reading a log."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cxr_explorer.cli import build_parser
from cxr_explorer.commands.app import NO_AUTH_WARNING, access_env, is_loopback
from cxr_explorer.errors import CliError
from cxr_explorer.retrieval.audit.log import AuditLog
from cxr_explorer.webapp.settings import AUDIT_ENV, AUTH_ENV
from tests.webapp.test_access import PROVIDER


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["app", "somewhere", *argv])


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cxr_explorer", *argv], capture_output=True, text=True, timeout=120)


def test_loopback_needs_nothing_and_another_address_needs_auth_or_no_auth(capsys: pytest.CaptureFixture) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert access_env(_args()) == {}
    with pytest.raises(CliError, match="give --auth FILE"):
        access_env(_args("--host", "0.0.0.0"))
    assert access_env(_args("--host", "0.0.0.0", "--no-auth")) == {}
    err = capsys.readouterr().err
    assert err.strip() == NO_AUTH_WARNING.format(host="0.0.0.0") and "sees every case" in err


def test_auth_file_is_checked_before_start_and_named_to_the_server(tmp_path: Path) -> None:
    good = tmp_path / "auth.toml"
    good.write_text(PROVIDER + '[viewers]\ndomains = ["hospital.org"]\n')
    assert access_env(_args("--host", "0.0.0.0", "--auth", str(good))) == {AUTH_ENV: str(good.resolve())}
    with pytest.raises(CliError, match="exclude each other"):
        access_env(_args("--auth", str(good), "--no-auth"))
    result = _cli("app", str(tmp_path), "--auth", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"cxr-explorer: error: auth file {tmp_path / 'missing.toml'} "
                                                  "does not exist"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[provider]\nclient_id = 'x'\n")
    result = _cli("app", str(tmp_path), "--auth", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "is missing" in result.stderr


def test_audit_options_reach_the_server(tmp_path: Path) -> None:
    env = access_env(_args("--audit-log", str(tmp_path / "logs" / "audit.jsonl"), "--audit-max-mb", "2",
                           "--audit-keep", "3", "--audit-redact-queries"))
    spec = json.loads(env[AUDIT_ENV])
    assert spec == {"path": str((tmp_path / "logs" / "audit.jsonl").resolve()), "max_bytes": 2 * 1024 * 1024,
                    "keep": 3, "redact_queries": True}
    with pytest.raises(CliError, match="is a folder"):
        access_env(_args("--audit-log", str(tmp_path)))


def test_audit_command_filters_by_user_and_time(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record("a@h.org", "viewer", "search", bundle="b", query="effusion")
    log.record("b@h.org", "curator", "decide", bundle="b", check="mismatch", id="case3", decision="exclude")
    result = _cli("audit", str(log.path), "--user", "B@h.org")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert "b@h.org  curator  decide  b" in line and 'decision="exclude"' in line
    result = _cli("audit", str(log.path), "--since", "2999-01-01", "--json")
    assert result.returncode == 0 and result.stdout == ""
    result = _cli("audit", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2 and result.stderr.strip() == (f"cxr-explorer: error: audit log "
                                                                 f"{tmp_path / 'none.jsonl'} does not exist")

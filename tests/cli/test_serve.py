"""``cxr-explorer serve``: the Caddyfile it writes (TLS, sticky cookie, health checks, loopback replicas), each
replica's thread share, and one-line errors before anything starts. The real proxy in front of real replicas is
tested in ``tests/e2e/test_replicas.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cxr_explorer.commands.serve import Plan, caddyfile, check_app_args, parse_listen, thread_env
from cxr_explorer.errors import CliError
from tests.helpers.paths import REPO


def _plan(tls: str = "internal", host: str = "127.0.0.1") -> Plan:
    return Plan(host=host, port=8443, tls=tls, server_name="cxr.example.org", ports=(9001, 9002), app_args=("b",),
                threads=1)


def test_caddyfile_proxies_to_every_replica_with_sticky_cookies_and_health_checks() -> None:
    text = caddyfile(_plan())
    assert "https://cxr.example.org:8443 {" in text and "tls internal" in text
    assert "reverse_proxy 127.0.0.1:9001 127.0.0.1:9002 {" in text
    assert "lb_policy cookie cxr_replica" in text
    assert "health_uri /_stcore/health" in text
    assert "bind 127.0.0.1" in text
    assert "admin off" in text and "skip_install_trust" in text


def test_caddyfile_without_tls_is_plain_http_on_every_address() -> None:
    text = caddyfile(_plan("off", host="0.0.0.0"))
    assert "http://:8443 {" in text and "tls internal" not in text and "auto_https off" in text
    assert "bind" not in text


@pytest.mark.parametrize(("replicas", "cores", "threads"), [(1, 2, "2"), (2, 2, "1"), (3, 2, "1"), (2, 16, "8")])
def test_each_replica_gets_its_share_of_the_cores_and_a_passive_wait(replicas: int, cores: int, threads: str) -> None:
    env = thread_env(replicas, cores)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == threads
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.parametrize("listen", ["8443", "host:", "host:0", "host:70000", "host:port"])
def test_bad_listen_addresses_are_one_line(listen: str) -> None:
    with pytest.raises(CliError, match="--listen must be HOST:PORT"):
        parse_listen(listen)


def test_listen_parses_ipv6_and_an_empty_host() -> None:
    assert parse_listen("[::1]:443") == ("::1", 443)
    assert parse_listen(":8443") == ("0.0.0.0", 8443)


def test_app_arguments_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="--port is serve's to choose"):
        check_app_args(["--", "bundle", "--port", "9000"])
    with pytest.raises(CliError, match="give the bundles to serve"):
        check_app_args([])
    with pytest.raises(CliError, match="app arguments: unrecognized arguments: --nope"):
        check_app_args(["bundle", "--nope"])
    with pytest.raises(CliError, match="does not exist"):
        check_app_args([str(tmp_path / "missing")])


@pytest.mark.slow  # fresh Python processes
def test_serve_errors_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    cases = [(["--replicas", "0", str(tmp_path)], "--replicas must be 1..64"),
             (["--caddy", str(tmp_path / "no-caddy"), str(tmp_path)], "caddy is not installed"),
             (["--listen", "nowhere", str(tmp_path)], "--listen must be HOST:PORT")]
    for argv, line in cases:
        out = subprocess.run([sys.executable, "-m", "cxr_explorer", "serve", *argv], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert line in out.stderr and "Traceback" not in out.stderr

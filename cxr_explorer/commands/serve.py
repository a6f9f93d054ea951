"""``cxr-explorer serve``: N ``cxr-explorer app`` processes on loopback behind Caddy (TLS, sticky sessions, health
checks), each with its share of the cores, restarted when one dies.

Caddy, not nginx: its reverse proxy has the cookie-sticky load balancing Streamlit's websocket needs and active
health checks in the open-source build, passes websocket upgrades through with no extra lines, and makes its own
internal certificate authority for TLS (``tls internal``), so one generated file configures all of it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cxr_explorer.errors import CliError
from cxr_explorer.retrieval.bundle.store import atomic

HEALTH_URI = "/_stcore/health"
STICKY_COOKIE = "cxr_replica"
# one line per serve, replica or proxy event; each process's own output goes to STATE/logs/
RESTART_PAUSE_S = 2.0  # a replica that dies at once is not restarted in a tight loop


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("serve", help="serve the web explorer as N processes behind Caddy (TLS, sticky sessions)",
                       description="Run N 'cxr-explorer app' processes on loopback behind Caddy: TLS from Caddy's "
                       "internal CA (or none), cookie-sticky sessions (Streamlit's websocket stays on one process), "
                       "health checks that take a dead process out, and a restart of any process that dies. Each "
                       "process gets cores/N threads with a passive OpenMP wait, so replicas do not oversubscribe "
                       "the cores. Everything after the options (or after --) goes to 'cxr-explorer app'.",
                       usage="cxr-explorer serve [--replicas N] [--listen HOST:PORT] [--tls internal|off] "
                       "[--state-dir DIR] [--server-name NAME] [--caddy PATH] [--] APP ARGS ...")
    p.add_argument("--replicas", type=int, default=2, help="app processes (default 2)")
    p.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT",
                   help="where Caddy listens (default 127.0.0.1:8443; 0.0.0.0:443 for a department server)")
    p.add_argument("--tls", choices=("internal", "off"), default="internal",
                   help="internal: HTTPS with a certificate from Caddy's own CA (its root certificate is in "
                   "STATE/caddy/data/caddy/pki/authorities/local/root.crt; give it to the browsers); off: plain HTTP "
                   "(only behind a TLS proxy of your own)")
    p.add_argument("--server-name", default="localhost",
                   help="the host name (or IP) the certificate is made for and browsers use (default localhost)")
    p.add_argument("--state-dir", default=".cxr-serve", metavar="DIR",
                   help="the Caddyfile, Caddy's CA and certificates, replicas.json and logs (default .cxr-serve)")
    p.add_argument("--caddy", default=None, metavar="PATH", help="the caddy binary (default: caddy on PATH)")
    p.add_argument("app_args", nargs=argparse.REMAINDER, metavar="APP ARGS",
                   help="bundles and options of 'cxr-explorer app' (not --host/--port: serve picks those)")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Plan:
    """What serve runs: the proxy's address and TLS mode, one loopback port per replica, the app's arguments and
    each replica's thread count."""

    host: str
    port: int
    tls: str
    server_name: str
    ports: tuple[int, ...]
    app_args: tuple[str, ...]
    threads: int


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); a one-line error otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise CliError(f"--listen must be HOST:PORT with a port 1..65535, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def thread_env(replicas: int, cores: int) -> dict[str, str]:
    """The environment that gives one of ``replicas`` processes its share of ``cores``: OpenMP/MKL/BLAS threads
    (torch's intra-op pool follows OMP_NUM_THREADS) and a passive OpenMP wait, so an idle pool yields its core at
    once instead of spinning on it while another process needs it."""
    n = str(max(1, cores // max(1, replicas)))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "OMP_WAIT_POLICY": "PASSIVE",
            "NUMBA_NUM_THREADS": n}


def caddyfile(plan: Plan) -> str:
    """The Caddyfile: the site on ``plan.host:plan.port`` proxying to every replica with cookie-sticky sessions and
    an active health check; no admin endpoint, no attempt to install the CA into the system's trust store (Caddy's
    state goes under ``STATE/caddy`` through its environment, set in ``run``)."""
    upstreams = " ".join(f"127.0.0.1:{p}" for p in plan.ports)
    scheme = "https" if plan.tls == "internal" else "http"
    site = f"{scheme}://{plan.server_name}:{plan.port}" if plan.tls == "internal" else f"http://:{plan.port}"
    tls = "\ttls internal\n" if plan.tls == "internal" else ""
    bind = f"\tbind {plan.host}\n" if plan.host not in ("0.0.0.0", "::") else ""
    return (
        "{\n"
        "\tadmin off\n"
        "\tskip_install_trust\n"
        + ("\tauto_https disable_redirects\n" if plan.tls == "internal" else "\tauto_https off\n")
        + "}\n\n"
        f"{site} {{\n{bind}{tls}"
        f"\treverse_proxy {upstreams} {{\n"
        f"\t\tlb_policy cookie {STICKY_COOKIE}\n"
        "\t\tlb_try_duration 10s\n"
        "\t\tlb_try_interval 250ms\n"
        f"\t\thealth_uri {HEALTH_URI}\n"
        "\t\thealth_interval 2s\n"
        "\t\thealth_timeout 2s\n"
        "\t\tfail_duration 5s\n"
        "\t}\n"
        "}\n"
    )


def app_parser() -> argparse.ArgumentParser:
    """``cxr-explorer app``'s own parser, to check the pass-through arguments here in one line."""
    from cxr_explorer.commands import app

    parser = argparse.ArgumentParser(prog="cxr-explorer serve", add_help=False)
    app.add_parser(parser.add_subparsers(dest="command"))
    return parser


def check_app_args(args: list[str]) -> tuple[str, ...]:
    """The app arguments without a leading ``--``; one-line errors for --host/--port or an app argument error;
    every bundle opened once here, so a bad one fails before anything starts."""
    from cxr_explorer.commands import app

    args = args[1:] if args[:1] == ["--"] else args
    for a in args:
        if a.split("=")[0] in ("--host", "--port"):
            raise CliError(f"{a.split('=')[0]} is serve's to choose (the replicas listen on loopback); use --listen")
    parser = app_parser()
    parser.error = lambda message: (_ for _ in ()).throw(CliError(f"app arguments: {message}"))  # type: ignore
    parsed = parser.parse_args(["app", *args])
    if not parsed.bundles and parsed.bundles_in is None:
        raise CliError("give the bundles to serve (BUNDLE ... or --bundles-in PARENT) after serve's options")
    app.check_bundles(parsed.bundles)
    if parsed.bundles_in is not None:
        app.bundles_in(parsed.bundles_in)
    return tuple(args)


def free_ports(n: int) -> tuple[int, ...]:
    """``n`` distinct free loopback ports."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(int(s.getsockname()[1]) for s in socks)
    finally:
        for s in socks:
            s.close()


def say(message: str) -> None:
    print(f"cxr-explorer serve: {message}", file=sys.stderr, flush=True)


@dataclass
class Child:
    """One supervised process: its command, environment and log file; ``proc`` while it runs."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = field(default=0)

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = time.monotonic()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def write_replicas(state: Path, replicas: list[Child], ports: tuple[int, ...]) -> None:
    """``STATE/replicas.json``: each replica's port, pid and restarts (for the operator and for monitoring)."""
    rows = [{"replica": i, "port": port, "pid": c.proc.pid if c.proc else None, "restarts": c.restarts,
             "log": str(c.log)} for i, (c, port) in enumerate(zip(replicas, ports, strict=True))]
    atomic.write_text(state / "replicas.json", json.dumps(rows, indent=1) + "\n")


def supervise(proxy: Child, replicas: list[Child], state: Path, ports: tuple[int, ...]) -> int:
    """Run until SIGTERM/SIGINT (0) or the proxy exits (1); a replica that exits is restarted (one line each)."""
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            if proxy.proc is not None and proxy.proc.poll() is not None:
                say(f"caddy exited with code {proxy.proc.returncode}; stopping (its log: {proxy.log})")
                return 1
            for i, child in enumerate(replicas):
                if child.proc is None or child.proc.poll() is None:
                    continue
                if time.monotonic() - child.started < RESTART_PAUSE_S:
                    continue
                code = child.proc.returncode
                child.restarts += 1
                say(f"replica {i} (port {ports[i]}) exited with code {code}; restarting it "
                    f"(restart {child.restarts}; its log: {child.log})")
                child.start()
                write_replicas(state, replicas, ports)
            time.sleep(0.5)
        return 0
    finally:
        for child in [proxy, *replicas]:
            child.stop()


def run(args: argparse.Namespace) -> int:
    """Check everything, write the Caddyfile, start the replicas and Caddy, then supervise them."""
    if not 1 <= args.replicas <= 64:
        raise CliError(f"--replicas must be 1..64, got {args.replicas}")
    host, port = parse_listen(args.listen)
    caddy = args.caddy or shutil.which("caddy")
    if not caddy or not Path(caddy).exists():
        raise CliError("caddy is not installed (apt-get install caddy), or give its path with --caddy")
    app_args = check_app_args(list(args.app_args))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    plan = Plan(host, port, args.tls, args.server_name, free_ports(args.replicas), app_args,
                max(1, cores // args.replicas))
    state = Path(args.state_dir).resolve()
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "caddy" / "data").mkdir(parents=True, exist_ok=True)
    atomic.write_text(state / "Caddyfile", caddyfile(plan))
    exe = shutil.which("cxr-explorer") or str(Path(sys.executable).parent / "cxr-explorer")
    env = dict(os.environ)
    # one cookie secret for every replica, so a session moved to another process keeps a valid XSRF cookie
    env.setdefault("STREAMLIT_SERVER_COOKIE_SECRET", secrets.token_hex(32))
    env.update(thread_env(args.replicas, cores))
    replicas = [Child(f"replica {i}", [exe, "app", *plan.app_args, "--host", "127.0.0.1", "--port", str(p)], env,
                      state / "logs" / f"replica-{i}.log") for i, p in enumerate(plan.ports)]
    caddy_env = {**os.environ, "XDG_DATA_HOME": str(state / "caddy" / "data"),
                 "XDG_CONFIG_HOME": str(state / "caddy" / "config"), "HOME": str(state / "caddy")}
    proxy = Child("caddy", [caddy, "run", "--config", str(state / "Caddyfile"), "--adapter", "caddyfile"],
                  caddy_env, state / "logs" / "caddy.log")
    for child in replicas:
        child.start()
    write_replicas(state, replicas, plan.ports)
    proxy.start()
    scheme = "https" if plan.tls == "internal" else "http"
    say(f"{args.replicas} replica(s) x {plan.threads} thread(s) behind Caddy at {scheme}://{plan.server_name}:{port}"
        f" (listening on {host}); state and logs in {state} (research use only)")
    if plan.tls == "internal":
        say(f"browsers must trust {state / 'caddy' / 'data' / 'caddy' / 'pki' / 'authorities' / 'local' / 'root.crt'}")
    return supervise(proxy, replicas, state, plan.ports)

"""``cxr-explorer app``: serve the Streamlit explorer on one or more bundles (loopback, headless by default)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import cxr_explorer.webapp
from cxr_explorer.errors import CliError
from cxr_explorer.retrieval.audit.log import DEFAULT_KEEP, DEFAULT_MAX_MB
from cxr_explorer.webapp.settings import (
    AUDIT_ENV,
    AUTH_ENV,
    BUNDLES_ENV,
    DEFAULT_MAX_UPLOAD_MB,
    DEVICE_ENV,
    MAX_UPLOAD_ENV,
    WEIGHTS_ENV,
    bundles_value,
)

SERVER_FILE = Path(cxr_explorer.webapp.__file__).resolve().parent / "server.py"  # webapp/ in a checkout or installed
NO_AUTH_WARNING = ("cxr-explorer: WARNING: serving without sign-in on {host}: everyone who can reach this port sees "
                   "every case")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("app", help="serve the web explorer on one or more bundles",
                       description="Serve the Streamlit explorer (search, grounding, map, about) on the given "
                       "bundles; with several, the app shows an index selector. Research use only.")
    p.add_argument("bundles", nargs="*", metavar="DIR", help="bundle folder(s) written by 'cxr-explorer build'")
    p.add_argument("--bundles-in", metavar="PARENT", default=None,
                   help="also serve every bundle directly inside this folder (e.g. a mounted volume)")
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, loopback only; use 0.0.0.0 to expose it)")
    p.add_argument("--weights-dir", default=None, help="folder with the released model files (default: hub cache)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest upload accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB})")
    who = p.add_argument_group("sign-in and audit (docs/deploy.md)")
    who.add_argument("--auth", metavar="FILE", default=None,
                     help="sign-in through an OpenID Connect provider, configured by this TOML file (provider, "
                     "allow-lists, roles); required to serve on an address other than loopback")
    who.add_argument("--no-auth", action="store_true",
                     help="serve a non-loopback address without sign-in (everyone who can reach the port sees every "
                     "case)")
    who.add_argument("--audit-log", metavar="FILE", default=None,
                     help="append who searched, grounded, uploaded, exported or decided what to this JSON-lines file")
    who.add_argument("--audit-max-mb", type=float, default=DEFAULT_MAX_MB,
                     help=f"rotate the audit log past this size, in MB (default {DEFAULT_MAX_MB:g})")
    who.add_argument("--audit-keep", type=int, default=DEFAULT_KEEP,
                     help=f"rotated audit files to keep (default {DEFAULT_KEEP})")
    who.add_argument("--audit-redact-queries", action="store_true",
                     help="keep a digest of query text in the audit log instead of the text")
    p.set_defaults(func=run)


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage stats, bounded uploads, no file watcher, no magic,
    no forced garbage collection after each run."""
    return [sys.executable, "-m", "streamlit", "run", str(SERVER_FILE),
            "--server.address", args.host, "--server.port", str(args.port), "--server.headless", "true",
            "--server.maxUploadSize", str(args.max_upload_mb), "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal", "--theme.base", "light",
            "--runner.magicEnabled", "false",  # no AST rewrite of each page when a session first runs it (~0.3 s)
            "--runner.postScriptGC", "false",  # no full gc.collect() after every run: it held the GIL ~0.3-1 s
            # (every session waited for it; Python's own generational collections still run)
            "--client.showErrorDetails", "type",  # no tracebacks (server paths) in the browser
            "--logger.hideWelcomeMessage", "true"]  # bound to 0.0.0.0 and headless, Streamlit's welcome looks up the
    # machine's external IP on the internet (checkip.amazonaws.com); the line printed by run() says where it serves


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_env(args: argparse.Namespace) -> dict[str, str]:
    """The sign-in and audit settings for the server process, checked here (one line per problem); prints the one
    warning line when a non-loopback address is served without sign-in."""
    from cxr_explorer.webapp.access import AccessError, load

    env: dict[str, str] = {}
    if args.auth and args.no_auth:
        raise CliError("--auth and --no-auth exclude each other")
    if args.auth:
        try:
            load(args.auth)
        except AccessError as exc:
            raise CliError(str(exc)) from None
        env[AUTH_ENV] = str(Path(args.auth).resolve())
    elif not is_loopback(args.host):
        if not args.no_auth:
            raise CliError(f"--host {args.host} is not loopback: give --auth FILE (sign-in, docs/deploy.md), or "
                           "--no-auth to let everyone who can reach the port see every case")
        print(NO_AUTH_WARNING.format(host=args.host), file=sys.stderr, flush=True)
    if args.audit_log:
        if args.audit_max_mb <= 0 or args.audit_keep < 0:
            raise CliError("--audit-max-mb must be > 0 and --audit-keep >= 0")
        path = Path(args.audit_log).resolve()
        if path.is_dir():
            raise CliError(f"--audit-log {args.audit_log} is a folder; give a file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK):
            raise CliError(f"--audit-log {args.audit_log}: the folder {path.parent} is not writable")
        env[AUDIT_ENV] = json.dumps({"path": str(path), "max_bytes": int(args.audit_max_mb * 1024 * 1024),
                                     "keep": args.audit_keep, "redact_queries": bool(args.audit_redact_queries)})
    return env


def check_bundles(dirs: list[str]) -> list[str]:
    """Absolute folders of the bundles, each opened once so a bad one fails here in one line."""
    from cxr_explorer.retrieval.bundle.reader import Bundle

    out = []
    for d in dirs:
        if not Path(d).is_dir():
            raise CliError(f"bundle folder {d} does not exist")
        Bundle.open(d)  # BundleError is a one-line user error
        out.append(str(Path(d).resolve()))
    return out


def bundles_in(parent: str) -> list[str]:
    """The sub-folders of ``parent`` that open as bundles (sorted, absolute; each opened once, here); a one-line
    error when there are none."""
    from cxr_explorer.retrieval.bundle.reader import Bundle, BundleError

    root = Path(parent)
    if not root.is_dir():
        raise CliError(f"--bundles-in {parent} is not a folder")
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            Bundle.open(sub)
        except BundleError as exc:
            print(f"cxr-explorer: not serving {sub.name}: {exc}", file=sys.stderr)
            continue
        found.append(str(sub.resolve()))
    if not found:
        raise CliError(f"no bundle in {parent}: put folders written by 'cxr-explorer build' there (in Docker, mount "
                       "them: -v $PWD/bundles:/data/bundles)")
    return found


def run(args: argparse.Namespace) -> int:
    """Check the bundles, then run Streamlit in the foreground (replacing this process on POSIX)."""
    if not args.bundles and args.bundles_in is None:
        raise CliError("give at least one bundle folder (or --bundles-in PARENT)")
    if not 1 <= args.port <= 65535:
        raise CliError(f"--port must be 1..65535, got {args.port}")
    if args.max_upload_mb < 1:
        raise CliError(f"--max-upload-mb must be at least 1, got {args.max_upload_mb}")
    access = access_env(args)
    dirs = check_bundles(args.bundles) + (bundles_in(args.bundles_in) if args.bundles_in is not None else [])
    if len({Path(d).name for d in dirs}) != len(dirs):
        raise CliError("bundle folders must have different names (the app tells them apart by folder name)")
    env = {k: v for k, v in os.environ.items() if k not in (AUTH_ENV, AUDIT_ENV)}
    env.update(access)
    env[BUNDLES_ENV] = bundles_value(dirs)
    env[DEVICE_ENV] = args.device
    env[MAX_UPLOAD_ENV] = str(args.max_upload_mb)
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    if args.weights_dir:
        env[WEIGHTS_ENV] = str(Path(args.weights_dir).resolve())
    cmd = streamlit_command(args)
    print(f"cxr-explorer: serving {len(dirs)} bundle(s) at http://{args.host}:{args.port} "
          f"({'sign-in on' if args.auth else 'no sign-in'}; research use only)", file=sys.stderr, flush=True)
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)
    return subprocess.call(cmd, env=env)

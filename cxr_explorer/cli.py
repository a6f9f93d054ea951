"""``cxr-explorer``: build | info | search | ground | merge | app | eval | models | curate | collection | serve |
audit.

Each subcommand lives in ``cxr_explorer/commands/<name>.py`` with ``add_parser(subparsers)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cxr_explorer import __version__
from cxr_explorer.errors import user_error_types

COMMANDS = ("demo", "build", "info", "search", "ground", "merge", "app", "eval", "models", "curate", "collection",
            "serve", "audit")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="cxr-explorer", description="Explore chest X-ray vision-language models "
                                     "(BioViL, BioViL-T): index a corpus, search it, ground phrases. Research use "
                                     "only, not for diagnosis.")
    parser.add_argument("--version", action="version", version=f"cxr-explorer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cxr_explorer.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cxr_explorer.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except user_error_types() as exc:
        code = getattr(exc, "exit_code", 2)
        print(f"cxr-explorer: error: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("cxr-explorer: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a user's path or disk: permissions, a full disk, a file where a folder belongs
        if args.verbose:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"cxr-explorer: error: {exc.strerror or exc}{where} (-v shows the details)", file=sys.stderr)
        return 1

"""``cxr-explorer audit FILE``: read the app's audit log (and its rotated files), oldest first, filtered by time and
user; one JSON line per entry, or a table."""

from __future__ import annotations

import argparse
import json
import sys

from cxr_explorer.errors import CliError
from cxr_explorer.retrieval.audit.log import AuditError, read

SUMMARY = ("query", "query_sha256", "case", "phrases", "image_sha256", "check", "id", "decision", "file")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("audit", help="read the app's audit log (who searched, grounded, uploaded, exported, decided)",
                       description="Print the entries of an audit log written by 'cxr-explorer app --audit-log FILE' "
                       "and its rotated files (FILE.1, FILE.2, ...), oldest first.")
    p.add_argument("file", metavar="FILE", help="the audit log given to 'cxr-explorer app --audit-log'")
    p.add_argument("--since", default=None, help="only entries at or after this UTC date or time "
                   "(e.g. 2026-12-06 or 2026-12-06T14:00)")
    p.add_argument("--user", default=None, help="only this user's entries (an email; case-insensitive)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(func=run)


def line(entry: dict) -> str:
    """``ts  user  role  action  bundle  key=value ...`` for the table."""
    details = " ".join(f"{k}={json.dumps(entry[k], ensure_ascii=False)}" for k in SUMMARY if k in entry)
    return "  ".join(str(entry.get(k, "-")) for k in ("ts", "user", "role", "action", "bundle")) + \
        (f"  {details}" if details else "")


def run(args: argparse.Namespace) -> int:
    """Print the matching entries; the count goes to stderr."""
    n = 0
    try:
        for entry in read(args.file, since=args.since, user=args.user):
            print(json.dumps(entry, ensure_ascii=False) if args.json else line(entry))
            n += 1
    except AuditError as exc:
        raise CliError(str(exc)) from None
    print(f"cxr-explorer: {n} entr{'y' if n == 1 else 'ies'}", file=sys.stderr)
    return 0

"""``cxr-explorer merge``: join shard bundles (``build --shard I/N``) into one bundle."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from cxr_explorer.errors import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("merge", help="merge shard bundles into one bundle")
    p.add_argument("shards", nargs="+", metavar="SHARD_DIR", help="finished shard bundles (same model)")
    p.add_argument("--out", required=True, metavar="DIR", help="new bundle folder")
    p.add_argument("--index-type", default="auto", choices=("auto", "flat", "hnsw", "ivf"), help="FAISS index type")
    p.add_argument("--allow-partial", action="store_true", help="merge although some shards of the split are missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Merge and print a one-line summary."""
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out {out_dir} exists and is not a folder; give a new folder for the merged bundle")
    from cxr_explorer.index.shards import merge_bundles
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from cxr_explorer.retrieval.bundle.reader import Bundle

    command = shlex.join(["cxr-explorer", *sys.argv[1:]]) if sys.argv[1:2] == ["merge"] else "cxr-explorer merge ..."
    out = merge_bundles([Path(d) for d in args.shards], Path(args.out), args.allow_partial, args.index_type, command)
    bundle = Bundle.open(out)
    print(f"merged {len(args.shards)} bundles: {bundle.count} items, {len(bundle.skipped)} skipped -> {out}")
    return 0

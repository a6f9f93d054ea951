"""``cxr-explorer models``: list the registered models and where their weights come from."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("models", help="list the available models")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per model (or JSON)."""
    from cxr_explorer.retrieval.models.registry import REGISTRY  # the models package pulls in torch: only when asked

    if args.json:
        print(json.dumps([s.to_dict() for s in REGISTRY.values()], indent=2))
        return 0
    for spec in REGISTRY.values():
        where = f"{spec.hf_repo}@{spec.revision}" if spec.is_real else "built in (seeded random)"
        print(f"{spec.name:12s} crop {spec.crop}  {where}\n             {spec.description}")
    return 0

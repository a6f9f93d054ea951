"""``cxr-explorer search``: query a bundle by text, image or case id; print a table or JSON hits."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from cxr_explorer.errors import CliError
from retrieval.limits import MAX_K

HIT_KEYS = ("rank", "score", "id", "path", "report", "matched_text", "target", "row")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that open a bundle with its model."""
    p.add_argument("--weights-dir", default=None, help="folder with the released model files (default: hub cache)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")


def hit_count(text: str) -> int:
    """argparse type for ``--k``: an integer from 1 to MAX_K, checked before any bundle or model is opened."""
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_K}, got {text!r}") from None
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_K}, got {k}")
    return k


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("search", help="search a bundle by text, image or case id",
                       description="Search a bundle. Scores are cosine similarities in [-1, 1], not probabilities.")
    p.add_argument("bundle", metavar="DIR", help="bundle folder written by 'cxr-explorer build'")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="free-text query, e.g. 'right pleural effusion'")
    query.add_argument("--image", metavar="PATH", help="query image (PNG, JPEG, DICOM, ...)")
    query.add_argument("--id", help="id of a bundle case: find the cases most similar to it (itself excluded)")
    p.add_argument("--k", type=hit_count, default=10, help=f"number of hits, 1..{MAX_K} (default 10)")
    p.add_argument("--target", default="images", choices=("images", "reports", "sentences"),
                   help="what to rank (default images)")
    p.add_argument("--where", action="append", default=[], metavar="COL=VALUE",
                   help="metadata filter; repeat: same column = OR, different columns = AND")
    p.add_argument("--hide-duplicates", type=float, default=None, metavar="T",
                   help="drop hits whose image has cosine >= T with a better-ranked hit (images/reports targets)")
    add_engine_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of hits, best first")
    p.set_defaults(func=run)


def open_engine(args: argparse.Namespace) -> Any:
    """Open the bundle and its model; a missing folder is a one-line user error."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its INFO lines about CPU builds are noise here
    from retrieval.engine import Engine

    if not Path(args.bundle).is_dir():
        raise CliError(f"bundle folder {args.bundle} does not exist")
    try:
        return Engine.open(args.bundle, weights_dir=args.weights_dir, device=args.device)
    except (RuntimeError, ValueError) as exc:  # e.g. --device cuda without a GPU, --weights-dir for tiny-random
        raise CliError(str(exc)) from None


def hit_to_json(hit: Any) -> dict[str, Any]:
    """A hit as a flat JSON object: the fixed keys, each metadata column as a key, and ``metadata`` too."""
    out: dict[str, Any] = {key: getattr(hit, key) for key in HIT_KEYS}
    for col, value in hit.metadata.items():
        out.setdefault(col, value)
    out["metadata"] = dict(hit.metadata)
    return out


def run(args: argparse.Namespace) -> int:
    """Run one query and print its hits."""
    from retrieval.filters import QueryError, parse_where

    try:
        where = parse_where(args.where)
        engine = open_engine(args)
        options = {"k": args.k, "target": args.target, "where": where, "hide_duplicates": args.hide_duplicates}
        if args.text is not None:
            if not args.text.strip():
                raise CliError("--text is empty")
            hits = engine.search_text(args.text, **options)
        elif args.image is not None:
            hits = engine.search_image(args.image, **options)
        else:
            hits = engine.search_id(args.id, **options)
    except QueryError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([hit_to_json(h) for h in hits], indent=2, ensure_ascii=False))
    else:
        print_table(hits, args.target)
    return 0


def _clip(text: str, width: int) -> str:
    """One line of at most ``width`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def print_table(hits: list[Any], target: str) -> None:
    """A readable table: rank, cosine, id, a few metadata values and the matched text (or report)."""
    if not hits:
        print("no hits")
        return
    width = max(60, shutil.get_terminal_size((120, 20)).columns)
    id_w = min(24, max(2, *(len(h.id) for h in hits)))
    print(f"{'rank':>4}  {'cosine':>7}  {'id':<{id_w}}  text")
    for h in hits:
        text = h.matched_text if target != "images" else h.report
        meta = " ".join(f"{k}={v}" for k, v in list(h.metadata.items())[:3] if v not in (None, ""))
        line = f"{h.rank:>4}  {h.score:>7.4f}  {_clip(h.id, id_w):<{id_w}}  "
        body = f"[{meta}] {text}" if meta else text
        print(line + _clip(body, width - len(line)))

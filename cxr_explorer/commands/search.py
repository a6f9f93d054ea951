"""``cxr-explorer search``: query a bundle by text, image or case id; print a table or JSON hits."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from cxr_explorer.commands import composed
from cxr_explorer.errors import CliError
from cxr_explorer.retrieval.bundle.targets import TARGETS
from cxr_explorer.retrieval.engine.limits import MAX_K

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
    composed.add_options(p)
    p.add_argument("--prior", metavar="PATH", default=None,
                   help="with --image: the patient's prior image; ranks by BioViL-T's fused (current + prior) "
                   "embedding and prints zero-shot interval change per finding. --id uses the case's stored prior")
    p.add_argument("--k", type=hit_count, default=10, help=f"number of hits, 1..{MAX_K} (default 10)")
    p.add_argument("--target", default="images", choices=TARGETS,
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
    from cxr_explorer.retrieval.engine.engine import Engine

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
    from cxr_explorer.retrieval.engine.filters import QueryError, parse_where

    if not args.parts:
        raise CliError("give a query: --text, --image or --id (repeatable; see --help)")
    try:
        where = parse_where(args.where)
        engine = open_engine(args)
        options = {"k": args.k, "target": args.target, "where": where, "hide_duplicates": args.hide_duplicates}
        if composed.is_composed(args):
            composed.print_composed(composed.run_composed(engine, args, options), args, hit_to_json, print_table)
            return 0
        kind, value = args.parts[0]["kind"], args.parts[0]["value"]
        if args.prior is not None and kind != "image":
            raise CliError("--prior goes with --image (a case given by --id uses its stored prior)")
        comparison = None
        if kind == "text":
            if not value.strip():
                raise CliError("--text is empty")
            hits = engine.search_text(value, **options)
        elif kind == "image" and args.prior is not None:
            hits, comparison = interval_search(engine, value, args.prior, options)
        elif kind == "image":
            hits = engine.search_image(value, **options)
        else:
            hits, comparison = id_search(engine, value, options)
    except QueryError as exc:
        raise CliError(str(exc)) from None
    if comparison is not None:
        print_comparison(hits, comparison, args)
        return 0
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


def interval_search(engine: Any, image: str, prior: str, options: dict[str, Any]) -> tuple[list[Any], Any]:
    """Hits ranked by the fused (image + prior) embedding, and the interval-change comparison."""
    from cxr_explorer.retrieval.temporal.compare import compare_images, search_pair

    return search_pair(engine, image, prior, **options), compare_images(engine, image, prior)


def id_search(engine: Any, item_id: str, options: dict[str, Any]) -> tuple[list[Any], Any]:
    """A case: with its stored prior (BioViL-T bundle built with priors) the fused embedding, else its own vector."""
    from cxr_explorer.retrieval.temporal.compare import compare_case, search_case_with_prior, temporal_records
    from cxr_explorer.retrieval.temporal.interval import has_temporal_path

    records = temporal_records(engine) if has_temporal_path(engine.model) else None
    if records is None or records.prior_of(item_id) is None:
        return engine.search_id(item_id, **options), None
    return search_case_with_prior(engine, item_id, **options), compare_case(engine, item_id)


def comparison_to_json(comparison: Any) -> dict[str, Any]:
    """Interval change as JSON: per finding the cosine per class, the best class and its margin."""
    return {"current_id": comparison.current_id, "prior_id": comparison.prior_id, "source": comparison.source,
            "interval_change": [{"finding": c.finding, "scores": c.scores, "predicted": c.predicted,
                                 "margin": c.margin} for c in comparison.changes]}


def print_comparison(hits: list[Any], comparison: Any, args: argparse.Namespace) -> None:
    """Hits plus the interval change (cosines and margins, never probabilities)."""
    if args.json:
        print(json.dumps({"hits": [hit_to_json(h) for h in hits], **comparison_to_json(comparison)}, indent=2,
                         ensure_ascii=False))
        return
    print_table(hits, args.target)
    prior = f" (prior {comparison.prior_id})" if comparison.prior_id else ""
    print(f"\ninterval change{prior}, zero-shot cosine per prompt set; margin = best - runner-up:")
    print(f"{'finding':<18} {'improving':>9} {'stable':>9} {'worsening':>9}  {'best':<10} {'margin':>7}")
    for c in comparison.changes:
        s = c.scores
        print(f"{c.finding:<18} {s['improving']:>9.4f} {s['stable']:>9.4f} {s['worsening']:>9.4f}  "
              f"{c.predicted:<10} {c.margin:>7.4f}")

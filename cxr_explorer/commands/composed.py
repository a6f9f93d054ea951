"""The composed-query options of ``cxr-explorer search``: parts in command-line order, marks, rank by a finding.

``--text``, ``--image`` and ``--id`` (each repeatable) add positive parts, ``--not`` / ``--not-id`` /
``--not-image`` negative ones; ``--weight W`` sets the weight of the part just before it; ``--exclude-above T``
turns every negative part from a penalty into a hard exclusion at cosine ``T``. ``--relevant`` / ``--not-relevant``
mark cases for a feedback round; ``--rank-by FINDING`` sorts the hits by the finding's zero-shot margin and
``--min-margin M`` keeps only hits whose margin reaches ``M``. The scoring is :mod:`retrieval.engine.compose`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from cxr_explorer.errors import CliError

PART_FLAGS = {"--text": ("text", False), "--image": ("image", False), "--id": ("id", False),
              "--not": ("text", True), "--not-image": ("image", True), "--not-id": ("id", True)}


class PartAction(argparse.Action):
    """Appends ``{"kind", "value", "negative", "weight"}`` to ``namespace.parts`` in command-line order."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        kind, negative = PART_FLAGS[option_string or ""]
        parts = list(getattr(namespace, "parts", None) or [])
        parts.append({"kind": kind, "value": str(values), "negative": negative, "weight": 1.0})
        namespace.parts = parts


class WeightAction(argparse.Action):
    """Sets the weight of the part given just before ``--weight``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        parts = list(getattr(namespace, "parts", None) or [])
        if not parts:
            parser.error("--weight follows the part it weighs (e.g. --text 'cardiomegaly' --weight 0.5)")
        try:
            weight = float(str(values))
        except ValueError:
            parser.error(f"--weight must be a number, got {values!r}")
        parts[-1] = {**parts[-1], "weight": weight}
        namespace.parts = parts


def add_options(p: argparse.ArgumentParser) -> None:
    """Register the part, feedback and finding options on the search parser."""
    parts = p.add_argument_group("query parts (repeatable, combined in order; see docs/composed-queries.md)")
    parts.add_argument("--text", action=PartAction, metavar="PHRASE", help="free-text part, e.g. 'pleural effusion'")
    parts.add_argument("--image", action=PartAction, metavar="PATH", help="query image part (PNG, JPEG, DICOM, ...)")
    parts.add_argument("--id", action=PartAction, metavar="CASE",
                       help="a bundle case as a part (its stored image vector; the case itself is never a hit)")
    parts.add_argument("--not", action=PartAction, metavar="PHRASE", help="negative text part: push hits away")
    parts.add_argument("--not-image", action=PartAction, metavar="PATH", help="negative image part")
    parts.add_argument("--not-id", action=PartAction, metavar="CASE", help="negative case part")
    parts.add_argument("--weight", action=WeightAction, metavar="W",
                       help="weight of the part just before it, in (0, 100] (default 1)")
    parts.add_argument("--exclude-above", type=float, default=None, metavar="T",
                       help="negative parts drop hits whose cosine with them exceeds T (default: a penalty instead)")
    fb = p.add_argument_group("relevance feedback (Rocchio on the stored vectors)")
    fb.add_argument("--relevant", action="append", default=[], metavar="CASE", help="a case marked relevant; repeat")
    fb.add_argument("--not-relevant", action="append", default=[], metavar="CASE",
                    help="a case marked not relevant; repeat")
    fb.add_argument("--marked", default="pin", choices=("pin", "hide", "rank"),
                    help="marked cases: pin the relevant first and hide the rest (default), hide all, or rank them")
    fd = p.add_argument_group("rank by a finding (zero-shot margin: positive minus negative prompts' cosine)")
    fd.add_argument("--rank-by", default=None, metavar="FINDING", help="sort the hits by this finding's margin")
    fd.add_argument("--min-margin", type=float, default=None, metavar="M",
                    help="with --rank-by: keep hits whose margin is at least M")
    p.set_defaults(parts=[])


def is_composed(args: argparse.Namespace) -> bool:
    """True when the query needs the composed path (more than one part, a weight, a negative part, marks or a
    finding); a single positive part with none of these is a plain search."""
    parts = args.parts
    return (len(parts) != 1 or parts[0]["negative"] or parts[0]["weight"] != 1.0 or args.exclude_above is not None
            or bool(args.relevant or args.not_relevant) or args.rank_by is not None or args.min_margin is not None)


def query_parts(args: argparse.Namespace) -> list[Any]:
    """The engine's QueryParts from the parsed options (texts stripped; empty ones refused)."""
    from cxr_explorer.retrieval.engine.compose import QueryPart

    out = []
    for part in args.parts:
        if part["kind"] == "text" and not part["value"].strip():
            raise CliError(f"{'--not' if part['negative'] else '--text'} is empty")
        exclude = args.exclude_above if part["negative"] else None
        out.append(QueryPart(kind=part["kind"], value=part["value"], weight=part["weight"], negative=part["negative"],
                             exclude_above=exclude))
    return out


def run_composed(engine: Any, args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """Run the composed query of ``args``: a :class:`retrieval.engine.engine.ComposedResult`."""
    from cxr_explorer.retrieval.engine.findings import FindingRank

    if args.prior is not None:
        raise CliError("--prior goes with a single --image, not with a composed query")
    if args.min_margin is not None and args.rank_by is None:
        raise CliError("--min-margin needs --rank-by FINDING (the finding whose margin it bounds)")
    finding = FindingRank(args.rank_by, min_margin=args.min_margin) if args.rank_by is not None else None
    return engine.search_composed(query_parts(args), relevant=args.relevant, not_relevant=args.not_relevant,
                                  marked=args.marked, finding=finding, **options)


def composed_to_json(result: Any, hit_to_json: Any) -> dict[str, Any]:
    """Hits (each with ``score``, ``base``, ``margin``, ``pinned`` and per-part scores) and the dropped cases."""
    hits = []
    for h in result.hits:
        row = hit_to_json(h.hit)
        row.update(score=h.score, base=h.base, margin=h.margin, pinned=h.pinned,
                   parts=[{"part": p.part, "similarity": p.similarity, "contribution": p.contribution}
                          for p in h.parts])
        hits.append(row)
    dropped = [{"id": d.id, "row": d.row, "base": d.base, "part": d.part, "similarity": d.similarity,
                "threshold": d.threshold} for d in result.dropped]
    return {"hits": hits, "dropped": dropped}


def print_composed(result: Any, args: argparse.Namespace, hit_to_json: Any, print_table: Any) -> None:
    """The hits as the plain table plus one line per hit with its part scores, then the dropped cases."""
    if args.json:
        print(json.dumps(composed_to_json(result, hit_to_json), indent=2, ensure_ascii=False))
        return
    print_table([h.hit for h in result.hits], args.target)
    if not result.hits:
        return
    print("\nwhy (cosine with each part, and what it added):")
    for h in result.hits:
        parts = "; ".join(f"{p.part}: {p.similarity:+.3f} ({p.contribution:+.3f})" for p in h.parts)
        extra = (f" margin {h.margin:+.3f}" if h.margin is not None else "") + (" pinned" if h.pinned else "")
        print(f"{h.hit.rank:>4}  {h.hit.id}{extra}  {parts}")
    if result.dropped:
        print("\ndropped (cosine with a negative part above its threshold):")
        for d in result.dropped:
            print(f"      {d.id}  {d.part}: {d.similarity:+.3f} > {d.threshold:+.3f}")

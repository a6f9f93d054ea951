"""``cxr-explorer curate``: find what is wrong in a bundle (report-image mismatch, label issues, outliers, pixel
hints, leakage between splits or against another bundle) and write a report folder (a parquet + CSV table per
check, worst first, and summary.json)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxr_explorer.errors import CliError
from cxr_explorer.retrieval.engine.limits import MAX_K

if TYPE_CHECKING:
    from cxr_explorer.retrieval.curate.report import CurateConfig

log = logging.getLogger(__name__)


class ListChecks(argparse.Action):
    """``--list-checks``: print every registered check (name, title, what it finds, needs, settings) and exit."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from dataclasses import asdict

        from cxr_explorer.retrieval.curate import checks

        for spec in checks():
            needs = ", ".join(sorted(n.value for n in spec.needs)) or "-"
            settings = ", ".join(f"{k}={v}" for k, v in asdict(spec.settings()).items())
            print(f"{spec.name:<16} {spec.title}: {spec.help}\n{'':<16} needs: {needs}; settings: {settings}")
        parser.exit()


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("curate", help="find swapped reports, label noise, outliers and leakage in a bundle",
                       description="Curation checks over a bundle's vectors (O(N k) through FAISS) and thumbnails. "
                       "Scores are cosine similarities, ranks, margins and neighbour shares, never probabilities. "
                       "--list-checks lists the checks with their default settings.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder written by 'cxr-explorer build'")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for the report tables and summary")
    p.add_argument("--list-checks", action=ListChecks, help="list the checks (name, title, needs, settings) and exit")
    p.add_argument("--against", metavar="OTHER", default=None,
                   help="a second bundle (e.g. train): list near-duplicate pairs between the two")
    p.add_argument("--label-col", metavar="COL", default=None, help="label column (multi-label: a|b or a;b)")
    p.add_argument("--split-col", metavar="COL", default=None, help="split column: near-duplicates across splits")
    p.add_argument("--prompts", metavar="JSON", default=None,
                   help="zero-shot prompts per label {label: {positive: [...], negative: [...]}} (loads the model)")
    p.add_argument("--k", type=int, default=None,
                   help="neighbours per case for the kNN checks (default: each check's own, see --list-checks)")
    p.add_argument("--dup-threshold", type=float, default=None,
                   help="cosine at or above which two images are near-duplicates (default: see --list-checks)")
    p.add_argument("--no-pixels", action="store_true", help="skip the pixel checks on thumbnails")
    p.add_argument("--weights-dir", default=None, help="model weights folder (only with --prompts)")
    p.set_defaults(func=run)


def _open(path: str) -> Any:
    from cxr_explorer.retrieval.bundle.reader import Bundle

    if not Path(path).is_dir():
        raise CliError(f"bundle folder {path} does not exist")
    return Bundle.open(path)


def _config(args: argparse.Namespace) -> CurateConfig:
    """The checks' settings: each check's defaults, with ``--k`` / ``--dup-threshold`` applied where given."""
    from cxr_explorer.retrieval.curate import CurateConfig, checks
    from cxr_explorer.retrieval.curate.pixels import SPEC as PIXELS

    if args.k is not None and not 1 <= args.k <= MAX_K:
        raise CliError(f"--k must be from 1 to {MAX_K}, got {args.k}")
    if args.dup_threshold is not None and not 0.0 < args.dup_threshold <= 1.0:
        raise CliError(f"--dup-threshold must be a cosine in (0, 1], got {args.dup_threshold}")
    given = {name: value for name, value in (("k", args.k), ("dup_threshold", args.dup_threshold))
             if value is not None}
    return CurateConfig(label_col=args.label_col, split_col=args.split_col,
                        skip=frozenset({PIXELS.name} if args.no_pixels else ()),
                        settings={spec.name: spec.tuned(given) for spec in checks()})


def _check_columns(bundle: Any, args: argparse.Namespace) -> None:
    cols = list(bundle.metadata.columns)
    for flag, col in (("--label-col", args.label_col), ("--split-col", args.split_col)):
        if col is not None and col not in cols:
            raise CliError(f"no column {col!r} for {flag} in bundle {bundle.root}; columns are: "
                           f"{', '.join(bundle.metadata_columns) or '(none)'}")


def _prompts(args: argparse.Namespace) -> Any:
    """Embedded prompts per label, or None; loads the bundle's model through the engine."""
    if args.prompts is None:
        return None
    from cxr_explorer.retrieval.curate.prompts import PromptFileError, embed_prompts, read_prompts
    from cxr_explorer.retrieval.engine.engine import Engine

    try:
        prompts = read_prompts(args.prompts)
    except PromptFileError as exc:
        raise CliError(str(exc)) from None
    engine = Engine.open(args.bundle, weights_dir=args.weights_dir, device="cpu")
    return embed_prompts(prompts, lambda texts: engine.encoder.prompt_embeddings(texts).numpy())


def _review_lines(bundle_root: Path) -> None:
    """One line on the curators' review files beside the bundle (if any), then each line skipped in them."""
    from cxr_explorer.retrieval.curate.review import current, read_decisions, review_dir

    folder = review_dir(bundle_root)
    if not folder.is_dir():
        return
    decisions, problems = read_decisions(folder)
    state = current(decisions)
    print(f"review: {len(state)} current decision(s) by {len({d.curator for d in state.values()})} curator(s) in "
          f"{folder.name}" + (f"; {len(problems)} bad line(s) skipped:" if problems else ""))
    for line in problems:
        print(f"  {line}")


def run(args: argparse.Namespace) -> int:
    """Run the checks and write the report folder; prints one line per check."""
    from cxr_explorer.retrieval.curate import data_from_bundle, run_checks, write_report
    from cxr_explorer.retrieval.curate.report import config_dict

    bundle = _open(args.bundle)
    _check_columns(bundle, args)
    other = data_from_bundle(_open(args.against)) if args.against else None
    config = _config(args)
    prompts = _prompts(args)
    model = bundle.manifest.get("model", {})
    if not model.get("is_real", True):
        print(f"warning: bundle {bundle.root} uses {model.get('name')} (NOT A REAL MODEL): the vector checks are "
              "meaningless; the pixel checks still apply", file=sys.stderr)
    results = run_checks(data_from_bundle(bundle), config, other, prompts,
                         progress=lambda name: log.info("running check %s", name))
    summary = write_report(args.out, results, bundle=str(bundle.root),
                           extra={"model": model.get("name"), "model_is_real": bool(model.get("is_real", True)),
                                  "against": args.against, "config": config_dict(config),
                                  "command": " ".join(["cxr-explorer", *sys.argv[1:]])})
    for r in results:
        print(f"{r.name:<16} {len(r.table):>7} rows  {r.flagged:>6} flagged   {r.title}")
    print(f"wrote {summary.parent} (one parquet + CSV per check, summary.json)")
    _review_lines(Path(bundle.root))
    return 0

"""``cxr-explorer eval grounding | zeroshot | progression | retrieval``: published-protocol evaluations over a model
or a bundle.

Numbers from ``tiny-random`` (or any model without real weights) mean nothing; the output records the model identity.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from cxr_explorer.errors import CliError


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="BUNDLE_OR_MODEL",
                   help="a bundle folder (its stored embeddings are used where the image is in it) or a model name")
    p.add_argument("--model", default=None,
                   help="expected model name: checked against the bundle's (a bundle is always evaluated with the "
                        "model that built it); with a model name as SOURCE it must be the same name")
    p.add_argument("--weights-dir", default=None, help="folder with the released model files (default: hub cache)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--out", metavar="FILE", default=None, help="also write the JSON result here")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``eval`` and its three tasks."""
    p = sub.add_parser("eval", help="evaluate a model: phrase grounding, zero-shot, retrieval",
                       description="Evaluate with the papers' metrics. Results of models without real weights "
                                   "(tiny-random) mean nothing.")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    g = tasks.add_parser("grounding", help="MS-CXR phrase grounding: CNR and mIoU per finding with bootstrap CIs")
    _source_options(g)
    g.add_argument("--annotations", required=True, metavar="CSV",
                   help="MS-CXR format (MS_CXR_Local_Alignment_v1.0.0.csv) or covid_chestxray boxes.csv")
    g.add_argument("--images-dir", default=None, metavar="DIR", help="root of the image paths (default: CSV folder)")
    g.add_argument("--interpolation", default="bilinear", choices=("bilinear", "nearest", "bicubic"),
                   help="grid -> image upsampling (default bilinear, as the reference notebook; hi-ml's API "
                        "default is nearest)")
    g.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    g.add_argument("--limit", type=int, default=None, help="evaluate only the first N image-phrase pairs")
    _output_options(g)
    g.set_defaults(func=run)
    z = tasks.add_parser("zeroshot", help="prompt-pair zero-shot classification: accuracy, F1, AUROC")
    _source_options(z)
    z.add_argument("--labels", required=True, metavar="CSV", help="CSV with an image column and a label column")
    z.add_argument("--images-dir", default=None, metavar="DIR", help="root of the image paths (default: CSV folder)")
    z.add_argument("--image-column", default=None, help="column of image paths (default: detected)")
    z.add_argument("--label-column", default=None, help="column of labels (default: detected)")
    z.add_argument("--positive-match", default=None, metavar="REGEX", help="labels matching this are positive")
    z.add_argument("--negative-match", default=None, metavar="REGEX",
                   help="labels matching this are negative, all others positive")
    z.add_argument("--positive", action="append", default=None, metavar="PROMPT",
                   help="positive prompt (repeat; default: the reference's pneumonia prompts)")
    z.add_argument("--negative", action="append", default=None, metavar="PROMPT",
                   help="negative prompt (repeat; default: the reference's no-pneumonia prompts)")
    z.add_argument("--limit", type=int, default=None, help="score only the first N images")
    _output_options(z)
    z.set_defaults(func=run)
    pr = tasks.add_parser("progression", help="MS-CXR-T-style interval change (improving/stable/worsening) per "
                          "finding: accuracy and macro-accuracy with bootstrap CIs (BioViL-T)")
    _source_options(pr)
    pr.add_argument("--pairs", required=True, metavar="CSV",
                    help="current, prior, finding, label per row (or <finding>_progression columns)")
    pr.add_argument("--images-dir", default=None, metavar="DIR", help="root of the image paths (default: CSV folder)")
    pr.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    pr.add_argument("--limit", type=int, default=None, help="evaluate only the first N labelled pairs")
    _output_options(pr)
    pr.set_defaults(func=run)
    r = tasks.add_parser("retrieval", help="recall@K image<->report on a paired bundle; precision@K by label")
    r.add_argument("bundle", metavar="BUNDLE", help="bundle folder written by 'cxr-explorer build'")
    r.add_argument("--k", type=int, nargs="+", default=[1, 5, 10], help="cut-offs (default 1 5 10)")
    r.add_argument("--label-column", default=None, help="metadata column for precision@K by label")
    r.add_argument("--label-sep", default=";", help="separator of several labels in one cell (default ';')")
    _output_options(r)
    r.set_defaults(func=run)


def _open_source(args: argparse.Namespace) -> Any:
    """An EmbeddingSource from a bundle folder (with its model) or a model name."""
    from cxr_explorer.retrieval.evaluation.runner import EmbeddingSource

    try:
        if Path(args.source).is_dir():
            from cxr_explorer.retrieval.engine.engine import Engine

            engine = Engine.open(args.source, weights_dir=args.weights_dir, device=args.device)
            if args.model is not None and args.model != engine.model.spec.name:
                raise CliError(f"bundle {args.source} was built with {engine.model.spec.name!r}, not {args.model!r}")
            return EmbeddingSource(engine.model, engine)
        from cxr_explorer.retrieval.models import load_model

        name = args.model or args.source
        if args.model is not None and args.model != args.source:
            raise CliError(f"SOURCE {args.source!r} is neither a bundle folder nor the model given by --model")
        return EmbeddingSource(load_model(name, args.weights_dir, args.device))
    except RuntimeError as exc:  # e.g. --device cuda without a GPU
        raise CliError(str(exc)) from None


def _run_task(args: argparse.Namespace) -> dict[str, Any]:
    from cxr_explorer.retrieval.evaluation import datasets, runner

    if args.task == "retrieval":
        from cxr_explorer.retrieval.bundle.reader import Bundle

        if not Path(args.bundle).is_dir():
            raise CliError(f"bundle folder {args.bundle} does not exist")
        if any(k < 1 for k in args.k):
            raise CliError("--k values must be >= 1")
        bundle = Bundle.open(args.bundle)
        return {"bundle": str(args.bundle), "model": bundle.manifest.get("model"),
                **runner.evaluate_retrieval(bundle, args.k, args.label_column, args.label_sep or None)}
    source = _open_source(args)
    head = {"source": str(args.source), "model": source.model.identity.to_dict()}
    if args.task == "progression":
        from cxr_explorer.retrieval.evaluation.progression import evaluate_progression, read_progression_cases

        pairs, bad = read_progression_cases(args.pairs, args.images_dir)
        res = evaluate_progression(source.model, pairs[: args.limit], n_boot=args.n_boot)
        return {**head, "pairs_csv": str(args.pairs), **res, "skipped": bad + res["skipped"]}
    if args.task == "grounding":
        cases = datasets.read_grounding_cases(args.annotations, args.images_dir)[: args.limit]
        return {**head, "annotations": str(args.annotations),
                **runner.evaluate_grounding(source, cases, args.interpolation, n_boot=args.n_boot)}
    items, rule = datasets.read_labelled_images(args.labels, args.images_dir, args.image_column, args.label_column,
                                         args.positive_match, args.negative_match)
    kwargs = {k: v for k, v in (("positive", args.positive), ("negative", args.negative)) if v}
    return {**head, "labels": str(args.labels), "label_rule": rule,
            **runner.evaluate_zeroshot(source, items[: args.limit], **kwargs)}


def json_safe(x: Any) -> Any:
    """NaN -> null and +-inf -> "inf" / "-inf", so the output is strict JSON."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def print_summary(res: dict[str, Any]) -> None:
    """A short human-readable summary of a result."""
    model = res.get("model") or {}
    print(f"model: {model.get('name')} (real weights: {model.get('is_real')})")
    if res["task"] == "grounding":
        print(f"pairs: {res['pairs']} on {res['images']} images, skipped {len(res['skipped'])}, "
              f"interpolation {res['interpolation']}")
        print(f"{'finding':24s} {'n':>4s} {'CNR [95% CI]':>24s} {'mIoU [95% CI]':>24s}")
        rows = [*res["per_class"].items(), ("ALL (pooled)", res["overall"])]
        for name, pair in rows:
            c, m = pair["cnr"], pair["miou"]
            print(f"{name:24s} {c['n']:>4d} {_fmt(c['value']):>8s} [{_fmt(c['lo'])}, {_fmt(c['hi'])}]"
                  f" {_fmt(m['value']):>8s} [{_fmt(m['lo'])}, {_fmt(m['hi'])}]")
        print(f"mean over findings: CNR {_fmt(res['class_mean']['cnr'])}, mIoU {_fmt(res['class_mean']['miou'])}")
    elif res["task"] == "progression":
        print(f"labelled pairs: {res['pairs']} ({res['image_pairs']} image pairs), skipped {len(res['skipped'])}")
        print(f"{'finding':20s} {'n':>4s} {'accuracy [95% CI]':>26s} {'macro-accuracy [95% CI]':>28s}")
        for name, row in [*res["per_finding"].items(), ("ALL (pooled)", res["overall"])]:
            a, m = row["accuracy"], row["macro_accuracy"]
            print(f"{name:20s} {row['n']:>4d} {_fmt(a['value']):>10s} [{_fmt(a['lo'])}, {_fmt(a['hi'])}]"
                  f" {_fmt(m['value']):>12s} [{_fmt(m['lo'])}, {_fmt(m['hi'])}]")
    elif res["task"] == "zeroshot":
        print(f"images: {res['images']} ({res['positives']} positive), skipped {len(res['skipped'])}")
        print(f"accuracy {_fmt(res['accuracy'])}  F1 {_fmt(res['f1'])}  AUROC {_fmt(res['auroc'])}"
              + (f" ({res['auroc_note']})" if res["auroc_note"] else ""))
    else:
        for name in ("image_to_report", "report_to_image"):
            print(f"{name}: " + "  ".join(f"{k} {_fmt(v)}" for k, v in res[name].items()))
        for name, table in (res.get("precision_by_label") or {}).items():
            if isinstance(table, dict):
                for k, per in table.items():
                    print(f"{name} {k}: " + ", ".join(f"{lab} {_fmt(v)}" for lab, v in per.items()))


def run(args: argparse.Namespace) -> int:
    """Run one evaluation task and print / write its result."""
    from cxr_explorer.retrieval.evaluation.datasets import AnnotationError

    try:
        res = _run_task(args)
    except (AnnotationError, ValueError) as exc:
        if type(exc).__name__ in ("UnknownModelError", "TextInputError"):
            raise
        raise CliError(str(exc)) from None
    text = json.dumps(json_safe(res), indent=2, ensure_ascii=False, allow_nan=False)
    if args.out:
        out = Path(args.out)
        if not out.parent.is_dir():
            raise CliError(f"cannot write {out}: folder {out.parent} does not exist")
        from cxr_explorer.retrieval.bundle.store.atomic import write_text

        write_text(out, text + "\n")
    if args.json:
        print(text)
    else:
        print_summary(res)
        if args.out:
            print(f"wrote {args.out}", file=sys.stderr)
    return 0

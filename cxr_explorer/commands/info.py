"""``cxr-explorer info``: what a bundle holds (model, counts, indexes, skipped items, build settings)."""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("info", help="show a bundle's manifest")
    p.add_argument("bundle", metavar="DIR", help="bundle folder")
    p.add_argument("--json", action="store_true", help="the manifest as JSON (count, skipped, model, ...)")
    p.add_argument("--verify", action="store_true", help="also check every data file's SHA-256")
    p.set_defaults(func=run)


def summary_lines(m: dict[str, Any]) -> list[str]:
    """Human-readable lines for a manifest."""
    from cxr_explorer.retrieval.models.precision import fidelity_note

    model, build, counts = m["model"], m.get("build", {}), m["counts"]
    reasons = Counter(s.get("reason", "") for s in m.get("skipped", []))
    lines = [
        f"model       {model['name']} (revision {model.get('revision')}, weights md5 {model.get('image_md5')}, "
        f"verified {model.get('verified')})" + ("" if model.get("is_real", True) else "  NOT A REAL MODEL"),
        f"format      {m['format']} v{m['format_version']}, created {m.get('created')}",
        f"items       {m['count']} images, {counts['reports']} reports, {counts['sentences']} sentences",
        "indexes     " + ", ".join(f"{t}: {i['type']} ({i['count']})" for t, i in m["indexes"].items()),
        f"grid        {m['grid_shape'][0]}x{m['grid_shape'][1]} patches, dim {m['dim']}, metric {m['metric']}",
        f"metadata    {', '.join(m.get('metadata_columns', [])) or '(none)'}",
        f"skipped     {sum(reasons.values())}" + (f" ({', '.join(f'{k}: {v}' for k, v in reasons.items())})"
                                                  if reasons else ""),
    ]
    temporal = m.get("temporal")
    if isinstance(temporal, dict) and isinstance(temporal.get("by_status"), dict):
        from cxr_explorer.index.priors import STATUS_MEANINGS

        by_status = temporal["by_status"]
        lines.append("priors      " + ", ".join(f"{k}: {v}" for k, v in by_status.items())
                     + ("" if temporal.get("embedded") else " (recorded only: this model has no prior-image path)"))
        lines += [f"            {k}: {STATUS_MEANINGS.get(str(k), 'unknown status')}" for k in by_status]
    if build.get("command"):
        lines.append(f"built with  {build['command']}")
    if build.get("images_per_s"):
        lines.append(f"speed       {build['images_per_s']:.1f} images/s (precision {build.get('precision')})")
    lines.append(f"precision   {fidelity_note(build.get('precision'))}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the manifest (JSON, or a summary); with --verify exit 1 when a file's checksum differs."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from cxr_explorer.retrieval.bundle.reader import Bundle, rebuild_hint

    bundle = Bundle.open(args.bundle, check_files=not args.verify)
    bad = bundle.verify() if args.verify else []
    if args.json:
        out = {**bundle.manifest, "count": bundle.count, "skipped": bundle.skipped}
        if args.verify:
            out["verify_failed"] = bad
            out["verifiable"] = bundle.verifiable
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print("\n".join(summary_lines(bundle.manifest)))
        print(f"version     {bundle.version} (newer one installed: {bundle.newer_version_available()})")
        if args.verify:
            print("checksums   " + ("all match" if not bad else f"MISMATCH: {', '.join(bad)}; this version is "
                                    f"damaged: {rebuild_hint(bundle.manifest)}"))
        print("integrity   " + ("manifest digest and block digests recorded (every read is checked)"
                                if bundle.verifiable else "not verifiable: written before integrity records (only "
                                "whole-file checksums; rebuild to add them)"))
    return 1 if bad else 0

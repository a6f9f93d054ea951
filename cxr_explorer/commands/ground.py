"""``cxr-explorer ground``: phrase grounding of a bundle case or an image file, optionally written as a PNG overlay."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxr_explorer.commands.search import add_engine_options, open_engine
from cxr_explorer.errors import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    p = sub.add_parser("ground", help="heatmap of where a phrase matches an image",
                       description="Ground a phrase on a bundle case (stored patch embeddings) or an image file. "
                                   "Values are cosine similarities in [-1, 1], not probabilities.")
    p.add_argument("bundle", metavar="DIR", help="bundle folder written by 'cxr-explorer build'")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--id", help="id of a bundle case")
    source.add_argument("--image", metavar="PATH", help="an image file (PNG, JPEG, DICOM, ...)")
    p.add_argument("--text", required=True, help="the phrase to ground, e.g. 'left basal consolidation'")
    p.add_argument("--out", metavar="PNG", default=None, help="write the image with the heatmap overlay here")
    p.add_argument("--interpolation", default="bilinear", choices=("nearest", "bilinear", "bicubic"),
                   help="upsampling of the patch grid to the image (default bilinear)")
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity over the image, 0..1 (default 0.5)")
    add_engine_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def overlay_image(image: Image.Image, map_hw: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The grayscale image in RGBA with the map's RdBu_r heatmap (cosine -1..1) alpha-composited on top."""
    from cxr_explorer.retrieval.grounding.maps import overlay_rgba

    base = image.convert("L").convert("RGBA")
    heat = Image.fromarray(overlay_rgba(map_hw, vmin=-1.0, vmax=1.0, alpha=alpha), mode="RGBA")
    if heat.size != base.size:  # the map is at the original size; guard against a resized file
        heat = heat.resize(base.size, Image.Resampling.BILINEAR)
    return Image.alpha_composite(base, heat)


def _decoded(path: str) -> Image.Image:
    """An image file decoded to grayscale like the model sees it (before preprocessing)."""
    from cxr_explorer.retrieval.inputs.images import load_image

    return load_image(path).image


def _stats(grounding: Any) -> dict[str, Any]:
    """Scores and grid / map ranges of a grounding as JSON-friendly floats."""
    inside = grounding.map[~np.isnan(grounding.map)]
    return {
        "text": grounding.text,
        "score": round(float(grounding.score), 6),
        "grid_shape": list(grounding.grid.shape),
        "grid_min": round(float(np.min(grounding.grid)), 6),
        "grid_max": round(float(np.max(grounding.grid)), 6),
        "map_min": round(float(inside.min()), 6) if inside.size else None,
        "map_max": round(float(inside.max()), 6) if inside.size else None,
        "width": int(grounding.width),
        "height": int(grounding.height),
    }


def _check_out(out: Path) -> None:
    """--out must name a PNG file in an existing folder (checked before the model loads)."""
    if out.is_dir():
        raise CliError(f"--out {out} is a folder; give a PNG file name, e.g. {out / 'heatmap.png'}")
    if not out.parent.is_dir():
        raise CliError(f"cannot write {out}: folder {out.parent} does not exist")


def run(args: argparse.Namespace) -> int:
    """Ground the phrase, write the overlay when --out is given, and print the numbers."""
    from cxr_explorer.retrieval.engine.filters import QueryError

    if not args.text.strip():
        raise CliError("--text is empty")
    if not 0.0 <= args.alpha <= 1.0:
        raise CliError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.out:
        _check_out(Path(args.out))
    engine = open_engine(args)
    try:
        if args.id is not None:
            row = engine.row_of(args.id)
            grounding = engine.grounder.ground_case(row, args.text, interpolation=args.interpolation)
            source: dict[str, Any] = {"id": str(args.id), "row": row, "path": str(engine.cases.image_path(row))}
            image = partial(engine.cases.full_image, row)
        else:
            grounding = engine.grounder.ground_image(args.image, args.text, interpolation=args.interpolation)
            source = {"image": str(args.image)}
            image = partial(_decoded, args.image)
    except QueryError as exc:
        raise CliError(str(exc)) from None
    result = {**source, **_stats(grounding), "out": None}
    if args.out:
        from cxr_explorer.retrieval.bundle.store.atomic import writing

        with writing(args.out) as fh:
            overlay_image(image(), grounding.map, args.alpha).save(fh, format="PNG")
        result["out"] = str(args.out)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        for key, value in result.items():
            print(f"{key:>10}: {value}")
        print("(score and map values are cosine similarities in [-1, 1], not probabilities)")
    return 0

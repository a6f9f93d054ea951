"""Model-free pixel checks on each case's stored thumbnail: orientation and view hints, inverted intensities, tiny
or mostly blank images and burnt-in text share. No model and no OCR: a few intensity statistics of a 64 x 64 copy.

Features (a = thumbnail scaled to [0, 1]):
- ``lr_symmetry`` / ``ud_symmetry``: correlation of ``a`` with its left-right / upside-down mirror. A frontal CXR is
  left-right symmetric (median 0.74 on covid-chestxray, 0.36 for laterals); rotated by 90 degrees the two swap.
- ``bottom_minus_top``: mean of the lowest quarter minus the top quarter (abdomen below the diaphragm is brighter;
  negative when upside down or inverted).
- ``mediastinum``: centre columns minus lateral columns (the spine and heart are bright; negative when inverted).
- ``text_share``: share of thumbnail pixels that are bright AND on a sharp 3 x 3 edge (burnt-in letters, markers);
  drawn white text raises it from a median of 0.0002 to 0.0037 on covid-chestxray thumbnails.
Hints are rules on these with the thresholds in :class:`PixelConfig`; ``view`` adds cases whose view value is rare
in the bundle (a lateral in a frontal set).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import maximum_filter, minimum_filter

from cxr_explorer.retrieval.curate.base import CheckResult, CurateData, evidence_json, finish_table
from cxr_explorer.retrieval.curate.registry import CheckInputs, CheckSpec, Need, register

NAME = "pixels"
TITLE = "Pixel checks (no model)"
SIDE = 64
THUMB_MAX = 256
"""Longest side of a bundle thumbnail; a smaller thumbnail is the original image at its own size."""
TEXT_BRIGHT, TEXT_EDGE = 0.7, 0.45
"""A text pixel is at least TEXT_BRIGHT and its 3 x 3 neighbourhood spans at least TEXT_EDGE (thumbnail scale)."""


@dataclass(frozen=True)
class PixelConfig:
    """Thresholds of the pixel hints (see the module docstring)."""

    rotated_min: float = 0.1  # ud_symmetry - lr_symmetry above this: rotated 90 degrees
    lateral_max: float = 0.45  # lr_symmetry below this (and not rotated): lateral or not a frontal CXR
    upside_down_max: float = -0.05  # bottom_minus_top below this with a bright mediastinum
    inverted_max: float = -0.02  # mediastinum below this with bottom_minus_top < 0
    blank_std: float = 0.03  # intensity standard deviation below this: mostly blank
    tiny_side: int = 256  # original shorter side below this (from recorded width/height): tiny
    text_min: float = 0.002  # text_share above this: burnt-in text (covid-chestxray median 0.0002)
    rare_view: float = 0.1  # a view value held by less than this share of the bundle


@dataclass(frozen=True)
class PixelFeatures:
    """The statistics of one image (see the module docstring)."""

    lr_symmetry: float
    ud_symmetry: float
    bottom_minus_top: float
    mediastinum: float
    std: float
    text_share: float
    thumb_side: int


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    xs, ys = x.ravel() - x.mean(), y.ravel() - y.mean()
    den = float(np.sqrt((xs @ xs) * (ys @ ys)))
    return float(xs @ ys / den) if den > 1e-12 else 0.0


def features(image: Image.Image) -> PixelFeatures:
    """Statistics of one grayscale image (any size; text share at the given size, the rest on a 64 x 64 copy)."""
    gray = image.convert("L")
    full = np.asarray(gray, dtype=np.float32) / 255.0
    a = np.asarray(gray.resize((SIDE, SIDE), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    q = SIDE // 4
    cols = a.mean(axis=0)
    edge = maximum_filter(full, size=3) - minimum_filter(full, size=3)
    return PixelFeatures(
        lr_symmetry=_corr(a, a[:, ::-1]), ud_symmetry=_corr(a, a[::-1]),
        bottom_minus_top=float(a[-q:].mean() - a[:q].mean()),
        mediastinum=float(cols[3 * SIDE // 8: 5 * SIDE // 8].mean()
                          - np.r_[cols[SIDE // 16: 3 * SIDE // 16], cols[13 * SIDE // 16: 15 * SIDE // 16]].mean()),
        std=float(full.std()), text_share=float(((full >= TEXT_BRIGHT) & (edge >= TEXT_EDGE)).mean()),
        thumb_side=int(min(gray.size)))


def hints(f: PixelFeatures, cfg: PixelConfig, size: tuple[int, int] | None) -> list[str]:
    """The hints one image's features raise (empty: nothing suspicious)."""
    out = []
    if f.std < cfg.blank_std:
        out.append("mostly blank")
        return out
    if size is not None and min(size) < cfg.tiny_side:
        out.append(f"tiny ({size[0]}x{size[1]})")
    rotated = f.ud_symmetry - f.lr_symmetry > cfg.rotated_min
    if rotated:
        out.append("rotated 90 degrees?")
    elif f.lr_symmetry < cfg.lateral_max:
        out.append("not left-right symmetric (lateral view or not a frontal CXR?)")
    if not rotated and f.mediastinum < cfg.inverted_max and f.bottom_minus_top < 0:
        out.append("inverted intensities?")
    elif not rotated and f.bottom_minus_top < cfg.upside_down_max and f.mediastinum > 0:
        out.append("upside down?")
    if f.text_share > cfg.text_min:
        out.append("burnt-in text")
    return out


HINT_WEIGHTS = (("mostly blank", 3.0), ("rotated", 2.0), ("upside down", 2.0), ("inverted", 2.0), ("tiny", 1.0),
                ("not left-right", 1.0), ("burnt-in text", 0.5), ("view ", 0.5))
"""Severity points per hint (by prefix): a blank, rotated or inverted image outranks common burnt-in markers."""


def _severity(f: PixelFeatures, found: list[str], cfg: PixelConfig) -> float:
    """Weighted hint points (HINT_WEIGHTS) plus how far the strongest orientation feature crossed (< 1)."""
    if not found:
        return 0.0
    points = sum(next((w for prefix, w in HINT_WEIGHTS if h.startswith(prefix)), 1.0) for h in found)
    strength = max(0.0, f.ud_symmetry - f.lr_symmetry - cfg.rotated_min, cfg.lateral_max - f.lr_symmetry,
                   -f.mediastinum, -f.bottom_minus_top, cfg.blank_std - f.std)
    return points + min(strength, 0.99)


def recorded_sizes(meta: pd.DataFrame) -> list[tuple[int, int] | None]:
    """(width, height) per row from the ``width`` / ``height`` columns when present and positive."""
    if "width" not in meta.columns or "height" not in meta.columns:
        return [None] * len(meta)
    w = pd.to_numeric(meta["width"], errors="coerce").to_numpy()
    h = pd.to_numeric(meta["height"], errors="coerce").to_numpy()
    return [(int(a), int(b)) if np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0 else None
            for a, b in zip(w, h, strict=True)]


def rare_views(meta: pd.DataFrame, share: float, column: str = "view") -> list[str]:
    """Per row: ``view X in a mostly Y set`` when the row's view value is held by less than ``share`` of rows."""
    if column not in meta.columns:
        return [""] * len(meta)
    views = meta[column].fillna("").astype(str).str.strip()
    counts = views[views != ""].value_counts(normalize=True)
    if counts.empty:
        return [""] * len(meta)
    common = str(counts.index[0])
    return [f"view {v} in a mostly {common} set" if v and counts.get(v, 1.0) < share else "" for v in views]


def check_pixels(data: CurateData, config: PixelConfig | None = None,
                 load: Callable[[int], bytes] | None = None) -> CheckResult:
    """Pixel hints for every case from its thumbnail (``load(row)`` -> image bytes, default ``data.thumbnail``);
    an unreadable thumbnail is listed with the hint ``unreadable thumbnail``, never fatal."""
    cfg = config or PixelConfig()
    load = load or data.thumbnail
    if load is None:
        raise ValueError("the pixel checks need thumbnails (or image bytes) for every case")
    sizes, views = recorded_sizes(data.metadata), rare_views(data.metadata, cfg.rare_view)
    records = []
    for row in range(data.count):
        try:
            img = Image.open(io.BytesIO(load(row)))
            f = features(img)
        except Exception as exc:  # a damaged thumbnail is a finding, not a crash
            records.append({"row": row, "severity": 9.0, "hints": f"unreadable thumbnail ({type(exc).__name__})"})
            continue
        size = sizes[row] or (img.size if max(img.size) < THUMB_MAX else None)  # never upscaled: the original size
        found = hints(f, cfg, size) + ([views[row]] if views[row] else [])
        records.append({"row": row, "severity": _severity(f, found, cfg), "hints": "; ".join(found), **asdict(f)})
    frame = pd.DataFrame(records)
    frame.insert(0, "id", data.ids[frame["row"].to_numpy()])
    frame["flagged"] = frame["hints"] != ""
    frame["evidence"] = [evidence_json({"hints": h.split("; ") if h else []}) for h in frame["hints"]]
    table = finish_table(frame, ["severity"], [False])
    counts: dict[str, int] = {}
    for h in frame["hints"]:
        for part in filter(None, str(h).split("; ")):
            key = part.split(" (")[0] if not part.startswith("view ") else "rare view"
            counts[key] = counts.get(key, 0) + 1
    return CheckResult(NAME, TITLE, table, asdict(cfg),
                       {"flagged": int(frame["flagged"].sum()), "by_hint": counts})


def _run(data: CurateData, settings: PixelConfig, inputs: CheckInputs) -> CheckResult:
    return check_pixels(data, settings)


SPEC = CheckSpec(
    name=NAME, title=TITLE, short_title="Pixel checks", looks_for="pixel faults",
    help="model-free hints from each thumbnail: rotated, upside down, inverted, not left-right symmetric, mostly "
    "blank, tiny, burnt-in text, a rare view",
    columns=("hints", "text_share", "lr_symmetry"), settings=PixelConfig, run=_run,
    needs=frozenset({Need.THUMBNAILS}),
    terms=(
        ('hints',
         'what the pixel rules found (rotated, upside down, inverted, blank, tiny, text, rare view)'),
        ('text_share',
         'share of the thumbnail that looks like burnt-in text'),
        ('lr_symmetry',
         'correlation of the thumbnail with its mirror image (a frontal chest film is near 1)'),
    ))
register(SPEC)

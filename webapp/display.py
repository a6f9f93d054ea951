"""Small display helpers: overlay composition, isolines, PNG encoding, hit tables and text snippets.

Heatmaps arrive as small patch grids ``[h, w]`` and are upsampled here to the DISPLAYED image size only (never the
full-resolution original), with NaN outside the model's centre crop so the margins show no overlay.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from cxr_explorer.retrieval.grounding import maps as grounding

ISOLINE_LEVELS = (0.25, 0.5, 0.75)
LAYER_COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
                 (240, 50, 230), (210, 245, 60))  # fmt: skip
HIDDEN_META = frozenset({"width", "height"})  # image size columns: shown in the case panel only
RESEARCH_ONLY = "Research use only — not for diagnosis or any clinical decision."


def fit(img: Image.Image, max_side: int) -> Image.Image:
    """A copy of ``img`` scaled down so its longest side is at most ``max_side`` (never up)."""
    out = img.copy()
    out.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return out


def png_bytes(img: Image.Image) -> bytes:
    """PNG encoding of a PIL image."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def grid_to_display(grid: np.ndarray, width: int, height: int, resize: int, crop: int) -> np.ndarray:
    """Upsample an [h, w] grid onto the centre crop of a ``width`` x ``height`` display image; NaN elsewhere.

    A scaled copy of the original has the same crop geometry (in proportion), so the reference's
    :func:`retrieval.grounding.maps.to_image_size` applied at display size places the map where the model looked.
    """
    return grounding.to_image_size(np.asarray(grid, dtype=np.float32), int(width), int(height), resize, crop,
                                   "bilinear")


def fit_range(*maps: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax): the smallest and largest value over ``maps`` (NaN ignored), widened by 1e-3 each way when
    they are equal. Cosines of one model often sit within +-0.1, where a fixed [-1, 1] reads as a flat wash."""
    values = [np.asarray(m, dtype=np.float32) for m in maps]
    finite = [v[~np.isnan(v)] for v in values]
    lo = min((float(v.min()) for v in finite if v.size), default=-1.0)
    hi = max((float(v.max()) for v in finite if v.size), default=1.0)
    return (lo, hi) if hi > lo else (lo - 1e-3, hi + 1e-3)


def isoline_mask(map_hw: np.ndarray, vmin: float, vmax: float, levels: Sequence[float] = ISOLINE_LEVELS
                 ) -> np.ndarray:
    """Bool [H, W]: pixels on the boundary of ``{normalised map >= level}`` for each level (threshold edges)."""
    norm = (np.asarray(map_hw, dtype=np.float32) - vmin) / max(vmax - vmin, 1e-12)
    valid = ~np.isnan(norm)
    edges = np.zeros(norm.shape, dtype=bool)
    for level in levels:
        inside = np.where(valid, norm >= level, False)
        padded = np.pad(inside, 1, mode="edge")
        interior = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
        edges |= inside & ~interior
    return edges


def compose(base: Image.Image, map_hw: np.ndarray, vmin: float, vmax: float, cmap: str = "RdBu_r",
            alpha: float = 0.5, isolines: bool = False) -> Image.Image:
    """``base`` (any mode) with the coloured map alpha-composited on top; optional isolines in black/white."""
    rgba = grounding.overlay_rgba(map_hw, vmin, vmax, cmap, alpha)
    if isolines:
        edge = isoline_mask(map_hw, vmin, vmax)
        rgba[edge] = (255, 255, 255, 255)
    canvas = base.convert("RGBA")
    if canvas.size != (rgba.shape[1], rgba.shape[0]):
        raise ValueError(f"map {rgba.shape[:2]} does not match the image {canvas.size[::-1]}")
    return Image.alpha_composite(canvas, Image.fromarray(rgba, "RGBA")).convert("RGB")


def compose_layers(base: Image.Image, maps: Sequence[np.ndarray], fill: float = 0.25, level: float = 0.5
                   ) -> Image.Image:
    """One coloured region + contour per map (grounded report): pixels at or above ``level`` of the map's own
    range are tinted with the layer colour (``fill`` opacity) and outlined opaquely."""
    canvas = base.convert("RGBA")
    for i, map_hw in enumerate(maps):
        values = np.asarray(map_hw, dtype=np.float32)
        if np.all(np.isnan(values)):
            continue
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        colour = LAYER_COLOURS[i % len(LAYER_COLOURS)]
        rgba = np.zeros(values.shape + (4,), dtype=np.uint8)
        region = np.where(np.isnan(values), False, (values - lo) / max(hi - lo, 1e-12) >= level)
        rgba[region] = (*colour, int(fill * 255))
        rgba[isoline_mask(values, lo, hi, (level,))] = (*colour, 255)
        canvas = Image.alpha_composite(canvas, Image.fromarray(rgba, "RGBA"))
    return canvas.convert("RGB")


def colour_hex(i: int) -> str:
    """CSS colour of layer ``i`` (matches :func:`compose_layers`)."""
    r, g, b = LAYER_COLOURS[i % len(LAYER_COLOURS)]
    return f"#{r:02x}{g:02x}{b:02x}"


def snippet(text: str, limit: int = 160) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hits_frame(hits: Sequence[Any]) -> pd.DataFrame:
    """Search hits as a flat table: rank, similarity, id, target, matched text, report, then metadata columns."""
    rows = []
    for h in hits:
        row: dict[str, Any] = {"rank": h.rank, "similarity": round(float(h.score), 6), "id": h.id, "row": h.row,
                               "target": h.target, "matched_text": h.matched_text, "report": h.report}
        for col, value in h.metadata.items():
            row.setdefault(col, value)
        rows.append(row)
    return pd.DataFrame(rows)


def meta_line(metadata: dict[str, Any], limit: int = 4) -> str:
    """``view: PA · labels: Effusion`` from the first few non-empty metadata values."""
    parts = [f"{k}: {v}" for k, v in metadata.items() if v not in (None, "", []) and k not in HIDDEN_META]
    return " · ".join(parts[:limit])


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~$:&=\"'/@%^;,?])")
_ABS_PATH = re.compile(r"(?<![\w.])(?:/[^\s/'\"]+)+/([^\s/'\"]+)")


_AUTOLINK = re.compile(r"(?i)(?<=://)|(?<=www)(?=\.)|(?<=@)")
ZWSP = "\u200b"


def md_escape(text: object) -> str:
    """``text`` made literal for Streamlit's Markdown: every ASCII punctuation backslash-escaped, line breaks kept
    as spaces, and a zero-width space after ``://``, ``www`` and ``@`` (GFM turns bare urls and e-mail addresses
    into links after escapes are resolved). No link, emphasis, HTML or autolink can come out of user text."""
    one_line = " ".join(str(text if text is not None else "").split())
    return _MD_SPECIAL.sub(r"\\\1", _AUTOLINK.sub(ZWSP, one_line))


def html_text(text: object) -> str:
    """``text`` escaped for an HTML body (for :func:`streamlit.html`, which does no Markdown)."""
    return html.escape(str(text if text is not None else ""), quote=True)


def plain_message(exc: BaseException | str, bundle_dir: str | None = None) -> str:
    """An error's text for the page: the bundle folder shown by name, any other absolute path by its last part,
    escaped for Markdown (``st.error`` renders Markdown)."""
    text = str(exc)
    if bundle_dir:
        text = text.replace(str(bundle_dir), Path(str(bundle_dir)).name)
    text = _ABS_PATH.sub(r"\1", text)
    return md_escape(text)


def open_png(data: bytes) -> Image.Image:
    """Decode PNG/JPEG bytes produced by this app (never user files: those go through retrieval.inputs.images)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def image(data: Any, alt: str, caption: str | None = None) -> None:
    """An image stretched to its container with alt text (screen readers; shown when it cannot load)."""
    import streamlit as st

    st.image(data, width="stretch", alt=" ".join(str(alt).split())[:200], caption=caption)


def phrases_shown(shown: int, given: int, per: str) -> str:
    """The notice when phrases beyond the per-view limit are left out: ``Showing 4 of 6 phrases (at most 4 per
    image): the first ones.``"""
    return (f"Showing {shown} of {given} phrases (at most {shown} per {per}): the first {shown}; "
            f"{given - shown} left out.")


def colour_bar(cmap: str, vmin: float, vmax: float, width: int = 480, height: int = 34) -> Image.Image:
    """A horizontal colour bar of ``cmap`` over [vmin, vmax] with the two ends and the middle written under it."""
    from PIL import ImageDraw

    ramp = np.tile(np.linspace(vmin, vmax, width, dtype=np.float32), (14, 1))
    bar = Image.fromarray(grounding.overlay_rgba(ramp, vmin, vmax, cmap, 1.0)[..., :3], "RGB")
    out = Image.new("RGB", (width, height), "white")
    out.paste(bar, (0, 0))
    draw = ImageDraw.Draw(out)
    mid = (vmin + vmax) / 2
    draw.text((2, 17), f"{vmin:.3f}", fill="black")
    draw.text((width // 2 - 14, 17), f"{mid:.3f}", fill="black")
    draw.text((width - 42, 17), f"{vmax:.3f}", fill="black")
    return out

"""Facets of bundle metadata: which columns are worth filtering on, multi-label separators, value counts and ranges.

A column is offered as a facet unless it looks like an identifier, a url or licence, a pixel size, or free text (many
long distinct values). Categorical columns give ``(value, count)`` pairs, multi-label cells (``COVID-19;ARDS``)
counted per label, with :data:`retrieval.engine.filters.EMPTY` for missing cells; numeric columns with many distinct
values give a (min, max) range. Separators are detected (``;`` or ``|``) or given at build time and recorded in the
manifest under ``label_separators`` (column -> separator).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.engine.filters import EMPTY, cell_text

__all__ = ["SEPARATOR_CANDIDATES", "Facet", "detect_separator", "detect_separators", "facets", "split_labels"]

SEPARATOR_CANDIDATES = (";", "|")
NOT_FACETS = re.compile(r"(^|_)(id|ids|uid|url|uri|doi|licen[cs]e|path|file|filename|folder|width|height|"
                        r"rows|columns|pixels?|offset|date|time|report|text|findings|impression|notes?)$", re.I)
MAX_VALUES = 60  # a categorical column with more distinct values (after splitting labels) is not a facet
MIN_RANGE_VALUES = 12  # a numeric column with at least this many distinct values is filtered by range
MAX_MEAN_LENGTH = 40  # longer values are free text


@dataclass(frozen=True)
class Facet:
    """One filterable column: ``values`` [(value, count)] most frequent first, or a numeric ``range`` (lo, hi)."""

    column: str
    values: list[tuple[str, int]] = field(default_factory=list)
    range: tuple[float, float] | None = None
    separator: str | None = None


def detect_separator(series: pd.Series) -> str | None:
    """``;`` or ``|`` when the column's text cells are multi-label lists joined by it, else None."""
    cells = [t for t in (cell_text(c) for c in series.dropna().unique()) if t]
    if not cells:
        return None
    best, best_n = None, 0
    for sep in SEPARATOR_CANDIDATES:
        n = sum(sep in c for c in cells)
        parts = [p.strip() for c in cells for p in c.split(sep)]
        short = parts and np.mean([len(p) for p in parts]) <= MAX_MEAN_LENGTH
        if n > best_n and short:
            best, best_n = sep, n
    return best


def detect_separators(metadata: pd.DataFrame, given: str | None = None) -> dict[str, str]:
    """column -> separator for the multi-label columns: ``given`` where cells contain it, else the detected one."""
    out: dict[str, str] = {}
    for col in metadata.columns:
        if col in ("id", "path", "report") or NOT_FACETS.search(str(col)):
            continue
        series = metadata[col]
        if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
            continue
        if not series.dropna().map(lambda v: isinstance(v, str)).all():  # list cells (sentences) are not labels
            continue
        if given and series.dropna().astype(str).str.contains(given, regex=False).any():
            out[str(col)] = given
            continue
        sep = detect_separator(series)
        if sep:
            out[str(col)] = sep
    return out


def _numeric(series: pd.Series) -> pd.Series | None:
    """The column as floats when every non-empty cell is a number, else None."""
    values = series.dropna()
    values = values[values.astype(str).str.strip() != ""]
    if values.empty or values.map(lambda v: isinstance(v, bool)).any():
        return None
    nums = pd.to_numeric(values, errors="coerce")
    return None if nums.isna().any() else nums.astype(float)


def split_labels(cell: object, sep: str | None) -> list[str]:
    """The distinct values of one cell in order: split on ``sep`` when the column is multi-label, each stripped;
    ``[EMPTY]`` for a missing or empty cell. Every facet count, filter list and map colour reads cells this way."""
    text = cell_text(cell)
    if not text:
        return [EMPTY]
    parts = [p.strip() for p in text.split(sep)] if sep else [text]
    return list(dict.fromkeys(p for p in parts if p)) or [EMPTY]


def _value_counts(series: pd.Series, sep: str | None) -> Counter[str]:
    counts: Counter[str] = Counter()
    for cell, n in series.map(cell_text).value_counts(dropna=False).items():
        for p in split_labels(cell, sep):
            counts[p] += int(n)
    return counts


def facet_of(series: pd.Series, column: str, sep: str | None) -> Facet | None:
    """The column's facet, or None when it is not worth filtering on."""
    nums = _numeric(series)
    if nums is not None and nums.nunique() >= MIN_RANGE_VALUES:
        return Facet(column, range=(float(nums.min()), float(nums.max())))
    counts = _value_counts(series, sep)
    real = [v for v in counts if v != EMPTY]
    if not real or len(real) > MAX_VALUES or np.mean([len(v) for v in real]) > MAX_MEAN_LENGTH:
        return None
    if len(real) == 1 and EMPTY not in counts:
        return None  # one value everywhere filters nothing
    return Facet(column, values=sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), separator=sep)


def facets(metadata: pd.DataFrame, columns: list[str], separators: Mapping[str, str] | None = None,
           include: tuple[str, ...] = ()) -> list[Facet]:
    """Facets of ``columns``: identifiers, urls, licences, pixel sizes and free text are left out unless named in
    ``include``."""
    out = []
    for col in columns:
        if NOT_FACETS.search(col) and col not in include:
            continue
        facet = facet_of(metadata[col], col, (separators or {}).get(col))
        if facet is not None:
            out.append(facet)
    return out

"""Where-filters over bundle metadata: ``COL=VALUE`` equality, OR within a column, AND across columns.

A cell matches a value when its text form equals the value, or when the cell is a multi-label string such as
``"Effusion|Pneumonia"`` (or a list) and the value is one of its parts; a bundle's manifest may name another separator
per column (``label_separators``, e.g. ``COVID-19;ARDS``). Numbers are compared by their text form with integral floats
written without ``.0`` (``3.0`` matches ``3``); missing cells (None/NaN) match only :data:`EMPTY`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EMPTY", "FilterError", "QueryError", "Where", "WhereInput", "cell_text", "matches", "normalize_where",
           "parse_where",
           "where_mask"]

LABEL_SEPARATOR = "|"
EMPTY = "(empty)"
"""The filter value that selects cells with no value."""
Where = dict[str, list[str]]
"""A normalised filter: column -> accepted values (OR); columns combine with AND."""
WhereInput = Mapping[str, str | int | float | Sequence[str | int | float]]
"""What callers may pass: a lone value or a list of values per column."""


class QueryError(ValueError):
    """A query the user can fix (bad k, bad filter, bad option); shown as a one-line message."""


class FilterError(QueryError):
    """A malformed ``COL=VALUE`` filter or an unknown column (the message lists the valid columns)."""


def parse_where(items: Iterable[str] | None) -> Where:
    """``["sex=F", "view=PA", "view=AP"]`` -> ``{"sex": ["F"], "view": ["PA", "AP"]}`` (order kept, no repeats)."""
    where: Where = {}
    for item in items or ():
        col, sep, value = item.partition("=")
        col, value = col.strip(), value.strip()
        if not sep or not col:
            raise FilterError(f"bad filter {item!r}: expected COL=VALUE")
        if not value:
            raise FilterError(f"bad filter {item!r}: empty value for column {col!r}")
        values = where.setdefault(col, [])
        if value not in values:
            values.append(value)
    return where


def normalize_where(where: WhereInput | None, columns: Sequence[str]) -> Where:
    """Validate a where-dict against the filterable ``columns``; a lone value becomes a one-item list.

    Raises :class:`FilterError` for an unknown column (listing the valid ones) or a column with no values.
    """
    out: Where = {}
    for col, raw in (where or {}).items():
        if col not in columns:
            valid = ", ".join(columns) if columns else "(none: this bundle has no metadata columns)"
            raise FilterError(f"unknown filter column {col!r}; valid columns: {valid}")
        values = [raw] if isinstance(raw, str) or not isinstance(raw, Iterable) else list(raw)
        texts = [t for t in (_text(v) for v in values) if t]
        if not texts:
            raise FilterError(f"filter on column {col!r} has no values")
        out[col] = list(dict.fromkeys(texts))
    return out


def _text(value: Any) -> str | None:
    """Canonical text of a scalar cell or filter value; None for missing values."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value).strip()


def cell_text(value: Any) -> str | None:
    """Canonical text of a cell (None for missing values); see the module docstring."""
    return _text(value)


def _cell_parts(cell: Any, sep: str = LABEL_SEPARATOR) -> set[str]:
    """The texts a cell can match: the whole text and its ``sep``-separated parts (or a list's items)."""
    if isinstance(cell, (list, tuple, np.ndarray)):
        return {t for item in cell for t in _cell_parts(item, sep)} or {EMPTY}
    text = _text(cell)
    if not text:
        return {EMPTY}
    parts = {text}
    if sep in text:
        parts.update(p.strip() for p in text.split(sep) if p.strip())
    return parts


def matches(cell: Any, values: Sequence[str], sep: str = LABEL_SEPARATOR) -> bool:
    """True when ``cell`` matches any of ``values`` (see the module docstring)."""
    return not _cell_parts(cell, sep).isdisjoint(values)


def where_mask(metadata: pd.DataFrame, where: Mapping[str, Sequence[str]] | None,
               separators: Mapping[str, str] | None = None) -> np.ndarray:
    """Boolean mask ``[N]`` over the rows of ``metadata`` that pass every clause of a normalised where-dict;
    ``separators`` names a column's multi-label separator (default ``|``).

    Each column is evaluated once per distinct cell value, so large bundles with few categories stay fast.
    """
    mask = np.ones(len(metadata), dtype=bool)
    for col, values in (where or {}).items():
        if col not in metadata.columns:
            raise FilterError(f"unknown filter column {col!r}; valid columns: {', '.join(map(str, metadata.columns))}")
        wanted = list(values)
        sep = (separators or {}).get(col, LABEL_SEPARATOR)
        series = metadata[col]
        try:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
        except TypeError:  # unhashable cells (lists): evaluate row by row
            mask &= np.fromiter((matches(c, wanted, sep) for c in series), dtype=bool, count=len(series))
            continue
        hit = np.fromiter((matches(u, wanted, sep) for u in uniques), dtype=bool, count=len(uniques))
        mask &= np.where(codes >= 0, hit[np.maximum(codes, 0)] if len(hit) else False, EMPTY in wanted)
    return mask

"""Exports of result tables: CSV and JSON carrying what produced them (query, filters, k, bundle, model, date),
named after the query (in any script). JSON holds numbers as numbers; a page of results can also be exported with
every matching result up to a stated cap."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.engine.engine import Engine
from cxr_explorer.webapp import auth

MAX_NAME = 60


def context(engine: Engine, search: dict[str, Any]) -> dict[str, Any]:
    """The export's header: the search (plain values), bundle folder name, model and UTC date."""
    return {**search, "bundle": engine.facts.name, "model": engine.facts.model_name,
            "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}


def file_stem(what: str, query: object) -> str:
    """``cxr-explorer-results-small-left-effusion``: the query's letters and digits in any script (NFKC, lower
    case; ``左下叶实变-ñandú`` stays), every other run of characters one dash, at most 60 characters: no path
    separator, dot, control or bidi character can reach the file name."""
    text = unicodedata.normalize("NFKC", str(query or "")).lower()
    slug = re.sub(r"-+", "-", "".join(c if c.isalnum() else "-" for c in text)).strip("-")[:MAX_NAME].rstrip("-")
    return f"cxr-explorer-{what}" + (f"-{slug}" if slug else "")


def _number(text: str) -> int | float | None:
    """``text`` as the number it spells exactly (``44`` -> 44, ``44.0`` -> 44.0), else None (``007``, ``1e3``,
    ``nan`` stay text)."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", text):
        return int(text)
    return value if repr(value) == text else None


def typed_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as plain JSON values: a text column whose every non-empty cell spells a number becomes numbers
    (empty cells null); ids and other text stay text."""
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", force_ascii=False))
    for col in frame.columns:
        if col == "id" or not (frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col])):
            continue
        cells = [r[col] for r in rows]
        texts = [c for c in cells if isinstance(c, str) and c.strip()]
        if not texts or any(not isinstance(c, str) and c is not None for c in cells):
            continue
        numbers = {t: _number(t.strip()) for t in texts}
        if all(n is not None for n in numbers.values()):
            for r in rows:
                r[col] = numbers.get(r[col]) if isinstance(r[col], str) else None
    return rows


def csv_bytes(frame: pd.DataFrame, ctx: dict[str, Any]) -> bytes:
    """The table as CSV after ``# key: value`` comment lines with the context (pandas: ``comment='#'``)."""
    head = "".join(f"# {k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in ctx.items())
    return (head + frame.to_csv(index=False)).encode()


def json_bytes(frame: pd.DataFrame, ctx: dict[str, Any]) -> bytes:
    """``{"context": {...}, "rows": [...]}`` as indented UTF-8 JSON."""
    return json.dumps({"context": ctx, "rows": typed_rows(frame)}, indent=2, ensure_ascii=False).encode()


def export_buttons(frame: pd.DataFrame, ctx: dict[str, Any], what: str,
                   everything: tuple[Callable[[], pd.DataFrame], str] | None = None, name: object = None) -> None:
    """Two distinct buttons: "CSV" and "JSON" of ``frame`` (the file names follow ``name``, else the query); with
    ``everything`` = (a function giving every matching row, what it holds, e.g. "all 648 matching results"), two
    more that export those rows, made only when clicked. For curators only when sign-in is on (a viewer sees a line
    saying so); each download is audited."""
    if not auth.is_curator():
        st.caption("Exports are for curators.")
        return
    stem = file_stem(what, name if name is not None else ctx.get("query"))
    audit = {"query": ctx.get("query"), "rows": len(frame)}
    with st.container(horizontal=True):
        st.download_button(f"Download {what} CSV", csv_bytes(frame, ctx), f"{stem}.csv", "text/csv",
                           key=f"export_{what}_csv", on_click=auth.record, args=("export",),
                           kwargs={"file": f"{stem}.csv", **audit})
        st.download_button(f"Download {what} JSON", json_bytes(frame, ctx), f"{stem}.json", "application/json",
                           key=f"export_{what}_json", on_click=auth.record, args=("export",),
                           kwargs={"file": f"{stem}.json", **audit})
    if everything is None:
        return
    rows, label = everything
    all_ctx = {**ctx, "exported": label}
    with st.container(horizontal=True):
        st.download_button(f"Download {label} CSV", lambda: csv_bytes(rows(), all_ctx), f"{stem}-all.csv",
                           "text/csv", key=f"export_{what}_all_csv", on_click=auth.record, args=("export",),
                           kwargs={"file": f"{stem}-all.csv", "query": ctx.get("query"), "rows": label})
        st.download_button(f"Download {label} JSON", lambda: json_bytes(rows(), all_ctx), f"{stem}-all.json",
                           "application/json", key=f"export_{what}_all_json", on_click=auth.record,
                           args=("export",), kwargs={"file": f"{stem}-all.json", "query": ctx.get("query"),
                                                     "rows": label})

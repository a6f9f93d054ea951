"""Exports of result tables: CSV and JSON carrying what produced them (query, filters, k, bundle, model, date),
named after the query."""

from __future__ import annotations

import datetime as dt
import json
import re
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
    """``cxr-explorer-results-small-left-effusion``: letters, digits and dashes of the query, at most 60."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(query or "").lower()).strip("-")[:MAX_NAME].rstrip("-")
    return f"cxr-explorer-{what}" + (f"-{slug}" if slug else "")


def csv_bytes(frame: pd.DataFrame, ctx: dict[str, Any]) -> bytes:
    """The table as CSV after ``# key: value`` comment lines with the context (pandas: ``comment='#'``)."""
    head = "".join(f"# {k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in ctx.items())
    return (head + frame.to_csv(index=False)).encode()


def json_bytes(frame: pd.DataFrame, ctx: dict[str, Any]) -> bytes:
    """``{"context": {...}, "rows": [...]}`` as indented UTF-8 JSON."""
    rows = json.loads(frame.to_json(orient="records", force_ascii=False))
    return json.dumps({"context": ctx, "rows": rows}, indent=2, ensure_ascii=False).encode()


def export_buttons(frame: pd.DataFrame, ctx: dict[str, Any], what: str) -> None:
    """Two distinct buttons: "CSV" and "JSON" (the file names follow the query); for curators only when sign-in is
    on (a viewer sees a line saying so). Each download is audited."""
    if not auth.is_curator():
        st.caption("Exports are for curators.")
        return
    stem = file_stem(what, ctx.get("query"))
    audit = {"query": ctx.get("query"), "rows": len(frame)}
    with st.container(horizontal=True):
        st.download_button(f"Download {what} CSV", csv_bytes(frame, ctx), f"{stem}.csv", "text/csv",
                           key=f"export_{what}_csv", on_click=auth.record, args=("export",),
                           kwargs={"file": f"{stem}.csv", **audit})
        st.download_button(f"Download {what} JSON", json_bytes(frame, ctx), f"{stem}.json", "application/json",
                           key=f"export_{what}_json", on_click=auth.record, args=("export",),
                           kwargs={"file": f"{stem}.json", **audit})

"""What a finished bundle records besides its vectors: multi-label separators of the metadata columns and the 2-D
map coordinates (``retrieval.maps.projection``). Called by :func:`retrieval.bundle.writer.stage_parts`, so a build, an
``--append`` and a ``merge`` all write them into the staged version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from cxr_explorer.retrieval.bundle.store import BASE_COLUMNS, names
from cxr_explorer.retrieval.engine.facets import detect_separators


def extra_columns(metadata: Path) -> list[str]:
    """The metadata columns of a metadata.parquet beyond the base ones, from its schema (no rows are read)."""
    return [c for c in pq.read_schema(metadata).names if c not in BASE_COLUMNS and not c.startswith("__index_level_")]


def finalise_extras(staging: Path, build: dict[str, Any]) -> dict[str, Any]:
    """Manifest entries computed from the staged bundle: ``label_separators`` (the build's ``label_sep`` where the
    cells contain it, else ``;`` / ``|`` detected) and ``projections`` (files written into ``staging``)."""
    from cxr_explorer.retrieval.maps.projection import write_projections

    path = staging / names.METADATA
    given = build.get("label_sep") or None
    columns = pd.read_parquet(path, columns=extra_columns(path))  # not the big base columns
    out: dict[str, Any] = {"label_separators": detect_separators(columns, given)}
    out["projections"] = write_projections(staging)
    return out

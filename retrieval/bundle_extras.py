"""What a finished bundle records besides its vectors: multi-label separators of the metadata columns and the 2-D
map coordinates (``retrieval.projection``). Called by :func:`retrieval.bundle.finalise_parts`, so a build, an
``--append`` and a ``merge`` all write them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from retrieval import bundle_io as io
from retrieval.facets import detect_separators


def finalise_extras(staging: Path, build: dict[str, Any]) -> dict[str, Any]:
    """Manifest entries computed from the staged bundle: ``label_separators`` (the build's ``label_sep`` where the
    cells contain it, else ``;`` / ``|`` detected) and ``projections`` (files written into ``staging``)."""
    from retrieval.projection import write_projections

    meta = pd.read_parquet(staging / io.METADATA)
    given = build.get("label_sep") or None
    out: dict[str, Any] = {"label_separators": detect_separators(meta.drop(columns=list(io.BASE_COLUMNS),
                                                                           errors="ignore"), given)}
    out["projections"] = write_projections(staging)
    return out

"""Parquet tables written part by part: one row group per part, so finalising never concatenates the corpus's rows.

The schema is fixed before the first part (every metadata column a string, ``sentences`` a list of strings), so
the parts' row groups agree even where a part has no sentences or lacks a column (its cells are "").
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def metadata_schema(columns: list[str]) -> pa.Schema:
    """Schema of metadata.parquet for ``columns``: ``sentences`` list<string>, every other column string."""
    return pa.schema([(c, pa.list_(pa.string()) if c == "sentences" else pa.string()) for c in columns])


SENTENCES_SCHEMA = pa.schema([("row", pa.int64()), ("text", pa.string())])


def union_columns(frames: Iterable[pd.DataFrame], first: tuple[str, ...]) -> list[str]:
    """``first``, then every other column of ``frames`` in order of first appearance (as ``pd.concat`` orders)."""
    seen = dict.fromkeys(first)
    for frame in frames:
        seen.update(dict.fromkeys(frame.columns))
    return list(seen)


def write_frames(path: Path, frames: Iterable[pd.DataFrame], schema: pa.Schema) -> None:
    """Write ``frames`` (each with the schema's columns) as the row groups of one parquet file at ``path``."""
    with pq.ParquetWriter(path, schema) as writer:
        wrote = False
        for frame in frames:
            if len(frame):
                writer.write_table(pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False))
                wrote = True
        if not wrote:
            writer.write_table(schema.empty_table())

"""metadata.parquet and sentences.parquet are written part by part and read back as one concatenated table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cxr_explorer.retrieval.bundle.store import names
from cxr_explorer.retrieval.bundle.store.parts import Part, _write_tables


def _part(meta: dict[str, list[object]], sentences: list[tuple[int, str]]) -> Part:
    n = len(meta["id"])
    vec = np.zeros((n, 4), np.float32)
    return Part(metadata=pd.DataFrame(meta), image_emb=vec, patches=np.zeros((n, 1, 1, 4), np.float16),
                thumbnails=[b""] * n, report_emb=vec, report_rows=np.arange(n, dtype=np.int64),
                sentence_emb=np.zeros((len(sentences), 4), np.float32),
                sentences=pd.DataFrame({"row": [r for r, _ in sentences], "text": [t for _, t in sentences]}))


def test_parts_with_other_columns_and_no_sentences_read_back_as_one_table(tmp_path: Path) -> None:
    parts = [_part({"id": ["a", "b"], "path": ["a.png", "b.png"], "view": ["PA", None],
                    "sentences": [["No effusion."], []]}, [(0, "No effusion.")]),
             _part({"id": [], "path": []}, []),  # nothing indexed: no row group
             _part({"id": ["c"], "path": ["c.png"], "labels": ["x;y"], "report": ["Clear. Normal."]},
                   [(0, "Clear."), (0, "Normal.")])]
    _write_tables(tmp_path, parts, np.cumsum([0] + [p.count for p in parts]))
    meta = pd.read_parquet(tmp_path / names.METADATA)
    assert list(meta.columns) == ["id", "path", "image_abspath", "report", "sentences", "view", "labels"]
    assert meta["id"].tolist() == ["a", "b", "c"] and meta["view"].tolist() == ["PA", "", ""]
    assert meta["labels"].tolist() == ["", "", "x;y"] and meta["report"].tolist() == ["", "", "Clear. Normal."]
    assert [list(v) for v in meta["sentences"]] == [["No effusion."], [], []]
    assert pq.ParquetFile(tmp_path / names.METADATA).num_row_groups == 2  # one per part with rows
    sent = pd.read_parquet(tmp_path / names.SENTENCES)
    assert sent["row"].tolist() == [0, 2, 2] and sent["text"].tolist() == ["No effusion.", "Clear.", "Normal."]
    assert sent["row"].dtype == np.int64


def test_no_rows_writes_empty_tables_with_the_base_columns(tmp_path: Path) -> None:
    _write_tables(tmp_path, [_part({"id": [], "path": []}, [])], np.zeros(2, np.int64))
    meta = pd.read_parquet(tmp_path / names.METADATA)
    assert len(meta) == 0 and list(meta.columns) == ["id", "path", "image_abspath", "report", "sentences"]
    assert list(pd.read_parquet(tmp_path / names.SENTENCES).columns) == ["row", "text"]

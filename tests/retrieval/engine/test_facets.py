"""Facets of real-looking metadata: separators detected or given, counts per label, empty values, numeric ranges,
ids / urls / pixel sizes / free text left out; filters split on the bundle's separator and select empty cells."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.engine.facets import detect_separator, detect_separators, facets
from cxr_explorer.retrieval.engine.filters import EMPTY, where_mask

META = pd.DataFrame({
    "labels": ["COVID-19;ARDS", "COVID-19", None, "ARDS;Pneumonia", "COVID-19;ARDS", ""],
    "view": ["PA", "AP", "PA", None, "PA", "AP"],
    "age": [30, 41, 52, 63, 74, 85] * 1,
    "doi": ["10.1/a", "10.1/b", "10.1/c", "10.1/d", "10.1/e", "10.1/f"],
    "width": [512, 1024, 800, 640, 2048, 333],
    "notes": ["a long free-text note about the patient's history and the findings, " * 2] * 6,
})


def test_separator_detected_per_column() -> None:
    assert detect_separator(META["labels"]) == ";"
    assert detect_separator(pd.Series(["A|B", "C"])) == "|"
    assert detect_separator(META["view"]) is None
    assert detect_separators(META) == {"labels": ";"}


def test_given_separator_wins_where_cells_contain_it() -> None:
    meta = pd.DataFrame({"tags": ["a/b", "c"], "labels": ["x;y", "z"]})
    assert detect_separators(meta, "/") == {"tags": "/", "labels": ";"}


def test_facets_count_labels_and_offer_empty_values() -> None:
    big = pd.concat([META] * 3, ignore_index=True)
    big["age"] = np.arange(len(big)) + 20
    found = {f.column: f for f in facets(big, list(big.columns), {"labels": ";"})}
    assert set(found) == {"labels", "view", "age"}  # doi, width and free text are not facets
    labels = dict(found["labels"].values)
    assert labels == {"COVID-19": 9, "ARDS": 9, "Pneumonia": 3, EMPTY: 6}
    assert "COVID-19;ARDS" not in labels
    assert dict(found["view"].values)[EMPTY] == 3
    assert found["age"].range == (20.0, float(len(big) + 19)) and not found["age"].values


def test_included_column_is_offered() -> None:
    found = facets(META, ["doi"], include=("doi",))
    assert [f.column for f in found] == ["doi"]


def test_where_mask_splits_on_the_bundle_separator_and_selects_empty_cells() -> None:
    mask = where_mask(META, {"labels": ["ARDS"]}, {"labels": ";"})
    assert mask.tolist() == [True, False, False, True, True, False]
    assert not where_mask(META, {"labels": ["ARDS"]}).any()  # the default separator is "|"
    empty = where_mask(META, {"labels": [EMPTY]}, {"labels": ";"})
    assert empty.tolist() == [False, False, True, False, False, True]

"""Tests for :mod:`retrieval.engine.filters`: parsing, validation and masks over metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr_explorer.retrieval.engine.filters import (
    FilterError,
    QueryError,
    matches,
    normalize_where,
    parse_where,
    where_mask,
)

META = pd.DataFrame({
    "sex": ["F", "M", "F", "", "M"],
    "view": ["PA", "AP", "AP", "PA", "LATERAL"],
    "labels": ["Effusion|Pneumonia", "No Finding", "Effusion", "Pneumonia | Edema", ""],
    "age": [61, 45, np.nan, 30.0, 45],
})
COLUMNS = list(META.columns)


def test_parse_where_groups_values_by_column() -> None:
    assert parse_where(["sex=F", "view=PA", "view=AP", "view=PA", " labels = a=b "]) == {
        "sex": ["F"], "view": ["PA", "AP"], "labels": ["a=b"]}
    assert parse_where(None) == {} and parse_where([]) == {}


@pytest.mark.parametrize("item", ["sex", "=F", "sex=", "  =  "])
def test_parse_where_rejects_malformed(item: str) -> None:
    with pytest.raises(FilterError, match="COL=VALUE|empty value"):
        parse_where([item])


def test_unknown_column_lists_valid_ones() -> None:
    with pytest.raises(FilterError, match=r"unknown filter column 'gender'; valid columns: sex, view, labels, age"):
        normalize_where({"gender": ["F"]}, COLUMNS)
    with pytest.raises(QueryError, match="no metadata columns"):
        normalize_where({"sex": "F"}, [])


def test_normalize_where_accepts_scalars_and_rejects_empty() -> None:
    assert normalize_where({"sex": "F", "age": [45, 45.0]}, COLUMNS) == {"sex": ["F"], "age": ["45"]}
    assert normalize_where(None, COLUMNS) == {}
    with pytest.raises(FilterError, match="no values"):
        normalize_where({"sex": []}, COLUMNS)


def test_mask_or_within_and_across_columns() -> None:
    where = normalize_where({"view": ["PA", "AP"], "sex": ["F"]}, COLUMNS)
    assert where_mask(META, where).tolist() == [True, False, True, False, False]
    assert where_mask(META, {}).all()


def test_label_parts_match() -> None:
    assert where_mask(META, {"labels": ["Pneumonia"]}).tolist() == [True, False, False, True, False]
    assert where_mask(META, {"labels": ["Edema"]}).tolist() == [False, False, False, True, False]
    assert where_mask(META, {"labels": ["Effusion|Pneumonia"]}).tolist()[0]  # the whole cell also matches
    assert not where_mask(META, {"labels": ["Effu"]}).any()  # no substring matches


def test_numbers_and_missing_values() -> None:
    assert where_mask(META, {"age": ["45"]}).tolist() == [False, True, False, False, True]
    assert where_mask(META, {"age": ["30"]}).tolist() == [False, False, False, True, False]
    assert not where_mask(META, {"sex": ["nan"]}).any() and not where_mask(META, {"age": ["nan"]}).any()


def test_matches_lists_and_unknown_column_in_mask() -> None:
    assert matches(["a", "b|c"], ["c"]) and not matches(None, ["None"])
    with pytest.raises(FilterError, match="valid columns"):
        where_mask(META, {"nope": ["x"]})
    lists = pd.DataFrame({"tags": [["a", "b"], ["c"], []]})
    assert where_mask(lists, {"tags": ["b"]}).tolist() == [True, False, False]

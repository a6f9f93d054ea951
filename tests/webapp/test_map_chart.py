"""The Map's chart spec and its table: the data goes apart from the spec (Altair's inlining refuses more than 5,000
rows, which broke the Map of a 10k bundle), the query star is a row of the table, and the spec keeps the selections."""

from __future__ import annotations

import numpy as np

from cxr_explorer.webapp.views.map.chart import BOX, PICK, MapPoints, spec_and_table


def _points(n: int) -> MapPoints:
    rng = np.random.default_rng(0)
    return MapPoints(rng.normal(size=(n, 2)).astype(np.float32), np.arange(n), np.array([f"case{i}" for i in range(n)]),
                     rng.choice(["PA", "AP"], n), [""] * n)


def test_more_than_5000_points_give_a_spec_without_data_and_the_whole_table() -> None:
    spec, table = spec_and_table(_points(6_000), "view", ("left effusion", np.array([0.1, 0.2], dtype=np.float32)))
    assert "data" not in spec and sum(len(rows) for rows in spec.get("datasets", {}).values()) <= 1  # no rows inlined
    assert len(table) == 6_001 and (table["kind"] == "query").sum() == 1
    assert {p["name"] for p in spec["params"]} == {PICK, BOX}


def test_without_a_query_every_row_is_a_case() -> None:
    _, table = spec_and_table(_points(10), "", None)
    assert list(table["kind"].unique()) == ["case"] and list(table["row"]) == list(range(10))


def test_multi_label_cells_are_split_like_the_search_facets() -> None:
    from cxr_explorer.webapp.views.map.chart import colour_values

    values, counts = colour_values(["COVID-19;ARDS", "COVID-19", "ARDS; COVID-19", "", None, "Pneumonia"], ";")
    assert counts == {"COVID-19": 3, "ARDS": 2, "": 2, "Pneumonia": 1}
    assert list(values) == ["COVID-19", "COVID-19", "COVID-19", "", "", "Pneumonia"]
    values, counts = colour_values(["PA", "AP", None], None)
    assert list(values) == ["PA", "AP", ""] and counts is None

"""The corpus listing as Arrow columns behaves as the list of Items it replaces."""

from __future__ import annotations

import pytest

from cxr_explorer.index import items as items_module
from cxr_explorer.index.items import Item, ItemTable


def _items(n: int, meta: bool = True) -> list[Item]:
    return [Item(f"id{k}", f"p{k}.png", f"/c/p{k}.png", f"Report {k}.", {"view": "PA" if k % 2 else "AP"}
                 if meta else {}) for k in range(n)]


@pytest.mark.parametrize("meta", [True, False])
def test_table_gives_back_the_items_in_order_across_blocks(monkeypatch: pytest.MonkeyPatch, meta: bool) -> None:
    monkeypatch.setattr(items_module, "BLOCK", 3)
    given = _items(8, meta)
    table = ItemTable.from_items(given)
    assert len(table) == 8 and list(table) == given and list(table.ids()) == [it.id for it in given]
    assert table[0] == given[0] and table[-1] == given[-1] and table[5].metadata == given[5].metadata
    with pytest.raises(IndexError):
        table[8]


def test_slices_take_and_where_select_by_position() -> None:
    given = _items(6)
    table = ItemTable.from_items(given)
    assert list(table[:4]) == given[:4] and list(table[4:]) == given[4:] and list(table[::2]) == given[::2]
    assert list(table.take([5, 0])) == [given[5], given[0]]
    kept = table.where(it.id != "id3" for it in table)
    assert [it.id for it in kept] == ["id0", "id1", "id2", "id4", "id5"] and kept[3].metadata == {"view": "AP"}
    empty = table.where(False for _ in table)
    assert len(empty) == 0 and not empty and list(empty) == [] and list(empty.ids()) == []


def test_empty_listing() -> None:
    table = ItemTable.from_items([])
    assert len(table) == 0 and list(table) == []

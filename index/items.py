"""The corpus listing held compactly: Arrow string columns, an :class:`Item` made only when one is asked for.

A list of :class:`Item` costs a Python object, a dict and a str per cell (~480 bytes an item for a one-line report,
plus what the CSV parse left fragmented); :class:`ItemTable` holds the text's own bytes and four offsets per cell in
Arrow buffers (outside Python's allocator, so they leave nothing fragmented behind when freed). A build iterates it
once, block by block, and selects its shard's and its pending rows by position (:meth:`ItemTable.take`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import pyarrow as pa

BLOCK = 1024  # rows turned into Items at a time while iterating
_BASE = ("id", "path", "abspath", "report")


@dataclass(frozen=True)
class Item:
    """One corpus image: ``path`` as written in the corpus, ``abspath`` resolved, ``report`` cleaned text."""

    id: str
    path: str
    abspath: str
    report: str
    metadata: dict[str, str] = field(default_factory=dict)


class ItemTable(Sequence[Item]):
    """[N] items as Arrow columns: ``base`` (id, path, abspath, report) and ``meta`` (one string column per
    metadata key, every item has every key; None when the corpus has no metadata columns)."""

    def __init__(self, base: pa.Table, meta: pa.Table | None) -> None:
        self._base = base
        self._meta = meta if meta is not None and meta.num_columns else None

    @classmethod
    def from_columns(cls, ids: list[str], paths: list[str], abspaths: list[str], reports: list[str],
                     meta: dict[str, list[str]] | None = None) -> ItemTable:
        """Items from [N] columns (and [N] metadata columns by key)."""
        base = pa.table({"id": pa.array(ids, pa.string()), "path": pa.array(paths, pa.string()),
                         "abspath": pa.array(abspaths, pa.string()), "report": pa.array(reports, pa.string())})
        return cls(base, pa.table({k: pa.array(v, pa.string()) for k, v in meta.items()}) if meta else None)

    @classmethod
    def from_items(cls, items: Iterable[Item]) -> ItemTable:
        """Items given one by one (their metadata keys are the first item's)."""
        rows = list(items)
        keys = list(rows[0].metadata) if rows else []
        return cls.from_columns([it.id for it in rows], [it.path for it in rows], [it.abspath for it in rows],
                                [it.report for it in rows], {k: [it.metadata.get(k, "") for it in rows] for k in keys})

    def __len__(self) -> int:
        return int(self._base.num_rows)

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> ItemTable: ...

    def __getitem__(self, index: int | slice) -> Item | ItemTable:
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"item {index} of {n}")
        return next(iter(self._block(index % n, 1)))

    def _block(self, start: int, size: int) -> list[Item]:
        base = self._base.slice(start, size).to_pydict()
        meta = self._meta.slice(start, size).to_pylist() if self._meta is not None else None
        return [Item(i, p, a, r, meta[k] if meta is not None else {})
                for k, (i, p, a, r) in enumerate(zip(*(base[c] for c in _BASE), strict=True))]

    def __iter__(self) -> Iterator[Item]:
        for start in range(0, len(self), BLOCK):
            yield from self._block(start, BLOCK)

    def ids(self) -> Iterator[str]:
        """The [N] ids in order, read block by block."""
        column = self._base.column("id")
        for start in range(0, len(self), BLOCK):
            yield from column.slice(start, BLOCK).to_pylist()

    def take(self, rows: Sequence[int] | np.ndarray) -> ItemTable:
        """The items at positions ``rows`` [K] (in that order)."""
        idx = pa.array(np.asarray(rows, np.int64), pa.int64())
        return ItemTable(self._base.take(idx), self._meta.take(idx) if self._meta is not None else None)

    def where(self, keep: Iterable[bool]) -> ItemTable:
        """The items whose flag in ``keep`` [N] is true, in order."""
        return self.take(np.flatnonzero(np.fromiter(keep, bool, len(self))))

    @property
    def nbytes(self) -> int:
        """Bytes of the Arrow buffers."""
        return int(self._base.nbytes + (self._meta.nbytes if self._meta is not None else 0))

"""Read a bundle's temporal section: each image's prior, the fused (current + prior) embedding, patient timelines.

Files (written by ``index/temporal.py``; format in docs/bundle-format.md): ``temporal/pairs.parquet`` with one row
per indexed image (``id``, ``prior_id``, ``status``, ``detail``, ``emb_row``) and ``temporal/temporal_emb.npy``
[n_paired, D] float32, row ``emb_row`` for images whose status is ``paired`` and that were embedded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["EMB_FILE", "PAIRS_FILE", "TEMPORAL_DIR", "TemporalRecords", "section_files"]

from cxr_explorer.retrieval.bundle.store.names import PAIRS_FILE, TEMPORAL_DIR  # noqa: E402
from cxr_explorer.retrieval.bundle.store.names import TEMPORAL_EMB as EMB_FILE  # noqa: E402


def section_files(folder: Path) -> tuple[Path, Path]:
    """(pairs table, fused embeddings) of the temporal section of a version (or staging) folder."""
    return Path(folder) / TEMPORAL_DIR / PAIRS_FILE, Path(folder) / TEMPORAL_DIR / EMB_FILE


@dataclass(frozen=True)
class TemporalRecords:
    """The temporal section of one bundle; ``table`` indexed by id, ``embeddings`` [n_paired, D]."""

    table: pd.DataFrame
    embeddings: np.ndarray

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> TemporalRecords | None:
        """The section of the bundle at ``root``, or None when it was built without priors."""
        folder = Path(root) / TEMPORAL_DIR
        if not (folder / PAIRS_FILE).is_file():
            return None
        table = pd.read_parquet(folder / PAIRS_FILE).set_index("id", drop=False)
        return cls(table, np.load(folder / EMB_FILE, mmap_mode="r"))

    def prior_of(self, item_id: str) -> str | None:
        """The id of the image's prior when one was paired, else None."""
        if item_id not in self.table.index:
            return None
        row = self.table.loc[item_id]
        return str(row["prior_id"]) if row["status"] == "paired" and row["prior_id"] else None

    def status_of(self, item_id: str) -> tuple[str, str]:
        """(status, detail) of an image; ("unknown", ...) for ids the section does not hold."""
        if item_id not in self.table.index:
            return "unknown", "not in the temporal section of this bundle"
        row = self.table.loc[item_id]
        return str(row["status"]), str(row["detail"])

    def embedding(self, item_id: str) -> np.ndarray | None:
        """The stored temporal global embedding [D] of ``item_id``, or None when it has none."""
        if item_id not in self.table.index:
            return None
        row = int(self.table.loc[item_id, "emb_row"])
        return np.asarray(self.embeddings[row], np.float32) if row >= 0 else None

    def timeline(self, item_id: str) -> list[str]:
        """All images linked to ``item_id`` through prior links (its patient's studies as paired), oldest first.

        Order: by depth in the prior chain (a study before the studies that name it as prior), then by id."""
        parents = {str(i): str(p) for i, p, s in zip(self.table["id"], self.table["prior_id"], self.table["status"],
                                                     strict=True) if s == "paired" and p}
        children: dict[str, list[str]] = {}
        for child, parent in parents.items():
            children.setdefault(parent, []).append(child)
        if item_id not in parents and item_id not in children:
            return [item_id] if item_id in self.table.index else []
        seen, stack = {item_id}, [item_id]
        while stack:
            node = stack.pop()
            for nxt in [*children.get(node, []), *([parents[node]] if node in parents else [])]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)

        def depth(node: str) -> int:
            d = 0
            while node in parents and d <= len(seen):
                node, d = parents[node], d + 1
            return d

        return sorted(seen, key=lambda n: (depth(n), n))

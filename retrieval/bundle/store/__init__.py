"""The bundle store: the one owner of a bundle's files on disk (names in :mod:`retrieval.bundle.store.names`).

Writers (index job, merge, tests' ``write_bundle``) go through :class:`WriterLock`, :class:`BuildArea` /
:class:`ChunkStore` and :func:`install`; readers through :class:`retrieval.bundle.reader.Bundle` (which holds one
installed version) or :func:`read_manifest`. Layout, install protocol and crash guarantees: docs/bundle-format.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxr_explorer.retrieval.bundle.store import versions
from cxr_explorer.retrieval.bundle.store.build_area import BuildArea, ChunkStore
from cxr_explorer.retrieval.bundle.store.errors import (
    BundleError,
    DamagedBundleError,
    DiskSpaceError,
    StoreError,
    WriterBusyError,
)
from cxr_explorer.retrieval.bundle.store.lock import WriterLock, holder
from cxr_explorer.retrieval.bundle.store.names import (
    BUILD_AREA,
    CURRENT,
    LEGACY_MARKERS,
    MANIFEST,
    VERSIONS,
    WRITER_LOCK,
)
from cxr_explorer.retrieval.bundle.store.parts import (
    BASE_COLUMNS,
    SKIPPED_FIELDS,
    Part,
    ThumbStore,
    data_files,
    file_checksums,
    normalise_metadata,
    read_json,
    read_part,
    read_rows,
    sum_stats,
    write_json,
    write_parts,
    write_skipped_csv,
)
from cxr_explorer.retrieval.bundle.store.space import disk_errors, reserve
from cxr_explorer.retrieval.bundle.store.versions import RETIRED, install, tidy

OWN_ENTRIES = (CURRENT, CURRENT + ".tmp", VERSIONS, WRITER_LOCK, BUILD_AREA, RETIRED)

__all__ = ["BASE_COLUMNS", "SKIPPED_FIELDS", "BuildArea", "BundleError", "ChunkStore", "DamagedBundleError",
           "DiskSpaceError", "Part", "StoreError",
           "ThumbStore", "WriterBusyError", "WriterLock", "current_version", "data_files", "disk_errors",
           "file_checksums", "has_bundle", "holder", "install", "is_legacy", "is_own_entry",
           "normalise_metadata", "read_json", "read_manifest", "read_part", "read_rows", "reserve", "sum_stats", "tidy",
           "write_json", "write_parts", "write_skipped_csv"]


def current_version(root: str | Path) -> int | None:
    """The installed version ``root/CURRENT`` names (None: nothing installed; ValueError: unreadable pointer)."""
    return versions.current(Path(root))


def has_bundle(root: str | Path) -> bool:
    """True when ``root`` has an installed version (or versions beside a damaged ``CURRENT``)."""
    try:
        return versions.current(Path(root)) is not None or bool(versions.listed(Path(root)))
    except ValueError:
        return True


def is_own_entry(name: str) -> bool:
    """True for a top-level entry of a bundle folder that the store itself writes (or a hidden one)."""
    return name.startswith(".") or name in OWN_ENTRIES


def is_legacy(root: str | Path) -> bool:
    """True for a format-1 bundle folder (flat files, no versions): it must be rebuilt."""
    root = Path(root)
    return not has_bundle(root) and any((root / name).exists() for name in LEGACY_MARKERS)


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """The manifest of the current version of the bundle folder ``root``, or None when nothing is installed.

    For tools and benchmarks: no checks and no reader hold; read data through
    :class:`retrieval.bundle.reader.Bundle`."""
    number = versions.current(Path(root)) if Path(root).is_dir() else None
    if number is None:
        return None
    return dict(read_json(versions.folder_of(Path(root), number) / MANIFEST))

"""Damage done to a bundle on disk, as a disk, a user or a stray tool would: flipped bits, edited or deleted files, and
an older bundle's form (written before the integrity records)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cxr_explorer.retrieval.bundle.store import names, versions


def current_folder(root: Path) -> Path:
    """The folder of the version ``root/CURRENT`` names."""
    number = versions.current(root)
    assert number is not None
    return versions.folder_of(root, number)


def flip_bit(path: Path, offset: int, bit: int = 6) -> None:
    """Flip one bit of the byte at ``offset`` of ``path`` (size unchanged)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def flip_patch_row(root: Path, row: int) -> None:
    """Flip the top exponent bit of every other float16 value of patch row ``row`` (a unit vector's values grow by
    2**16), as one bad sector would."""
    path = current_folder(root) / names.PATCHES
    array = np.load(path, mmap_mode="r")
    row_bytes = int(np.prod(array.shape[1:])) * array.itemsize
    start = int(array.offset) + row * row_bytes
    del array
    data = bytearray(path.read_bytes())
    for at in range(start + 1, start + row_bytes, 4):  # the high byte of every other little-endian float16
        data[at] ^= 0x40
    path.write_bytes(bytes(data))


def edit_manifest(root: Path, change: Callable[[dict[str, Any]], Any], reseal: bool = False) -> None:
    """Rewrite the current manifest after ``change(manifest)`` edited it in place (its return value is ignored);
    ``reseal`` writes a matching ``manifest.sha256`` (damage the digest cannot see, e.g. a bad writer)."""
    path = current_folder(root) / names.MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if reseal:
        from cxr_explorer.retrieval.bundle.store.integrity import seal_manifest

        seal_manifest(path.parent)


def record_checksums(root: Path) -> None:
    """Record the current files' SHA-256 in the manifest as they now are (damage done before the checksums were
    taken, e.g. by a faulty writer: only a check of the values themselves can see it)."""
    from cxr_explorer.retrieval.bundle.store import file_checksums

    folder = current_folder(root)

    def record(m: dict[str, Any]) -> None:
        for name, entry in file_checksums(folder, list(m["files"])).items():
            m["files"][name]["sha256"] = entry["sha256"]

    edit_manifest(root, record, reseal=(folder / names.MANIFEST_DIGEST).is_file())


def as_older_bundle(root: Path, drop: tuple[str, ...] = ()) -> None:
    """Turn the current version into one written before the integrity records: no ``manifest.sha256``, no block
    digests, no ``integrity`` key; manifest keys in ``drop`` removed too."""
    folder = current_folder(root)
    (folder / names.MANIFEST_DIGEST).unlink()
    for path in folder.glob("*" + names.BLOCK_DIGESTS_SUFFIX):
        path.unlink()

    def strip(m: dict[str, Any]) -> None:
        for key in ("integrity", *drop):
            m.pop(key, None)
        for entry in m["files"].values():
            entry.pop("blocks", None)

    edit_manifest(root, strip)

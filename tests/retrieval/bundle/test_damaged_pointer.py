"""No writer deletes what it cannot prove is garbage: a missing, unreadable or dangling ``CURRENT``, or a current
version without its manifest, stops every writer with one line and nothing removed; readers say exactly that."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store import WriterLock, names, versions
from cxr_explorer.retrieval.bundle.store.errors import DamagedBundleError
from tests.helpers.bundles import random_arrays, write_test_bundle


def two_versions(tmp_path: Path) -> Path:
    """Versions 1 (5 items) and 2 (7 items), both still on disk (a reader held 1 while 2 was written)."""
    root = write_test_bundle(tmp_path / "b")
    with Bundle.open(root):
        write_test_bundle(root, **random_arrays(7, seed=1))
    return root


def remove_pointer(root: Path) -> None:
    (root / names.CURRENT).unlink()


def garble_pointer(root: Path) -> None:
    (root / names.CURRENT).write_bytes(b"\xff\x00garbage")


def dangling_pointer(root: Path) -> None:
    (root / names.CURRENT).write_text("000009\n")


def remove_manifest(root: Path) -> None:
    (versions.folder_of(root, 2) / names.MANIFEST).unlink()


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing CURRENT": (remove_pointer, "CURRENT, missing although versions/ holds 000001, 000002"),
    "unreadable CURRENT": (garble_pointer, "CURRENT, unreadable"),
    "dangling CURRENT": (dangling_pointer, "CURRENT, names version 000009, which is not in versions/"),
    "deleted version manifest": (remove_manifest, "versions/000002/manifest.json, missing from the current version"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_pointer_stops_every_writer_and_keeps_every_version(tmp_path: Path, case: str) -> None:
    damage, said = DAMAGE[case]
    root = two_versions(tmp_path)
    damage(root)
    kept = sorted(p.name for p in (root / names.VERSIONS).iterdir())
    for write in (lambda: write_test_bundle(root, **random_arrays(2, seed=2, prefix="new")),
                  lambda: WriterLock(root).__enter__()):
        with pytest.raises(DamagedBundleError) as exc:
            write()
        assert said in str(exc.value) and "\n" not in str(exc.value) and "nothing was changed" in str(exc.value)
    assert sorted(p.name for p in (root / names.VERSIONS).iterdir()) == kept == ["000001", "000002"]
    with pytest.raises(DamagedBundleError, match=said.replace("(", r"\(")):
        Bundle.open(root)
    (root / names.CURRENT).write_text("000001\n")
    if case == "deleted version manifest":
        with WriterLock(root):
            pass  # version 2 is newer than the pointer again: an orphan of the install protocol
    with Bundle.open(root) as b:
        assert b.count == 5


def test_the_fix_names_the_newest_complete_version(tmp_path: Path) -> None:
    root = two_versions(tmp_path)
    remove_pointer(root)
    with pytest.raises(DamagedBundleError, match=f"echo 000002 > {root / names.CURRENT}"):
        Bundle.open(root)
    remove_manifest(root)
    with pytest.raises(DamagedBundleError, match=f"echo 000001 > {root / names.CURRENT}"):
        Bundle.open(root)


def test_the_one_version_form_keeps_the_original_items(tmp_path: Path) -> None:
    """Build 5 items, lose CURRENT, write 2 others: refused, and version 1 still holds the 5."""
    root = write_test_bundle(tmp_path / "x")
    remove_pointer(root)
    with pytest.raises(DamagedBundleError, match="CURRENT, missing although versions/ holds 000001"):
        write_test_bundle(root, **random_arrays(2, seed=3, prefix="other"))
    versions.write_current(root, 1)
    with Bundle.open(root) as b:
        assert b.count == 5 and list(b.metadata["id"]) == [f"img{i}" for i in range(5)]


def test_an_intact_pointer_still_tidies_older_versions(tmp_path: Path) -> None:
    root = two_versions(tmp_path)
    with WriterLock(root):
        pass
    assert versions.listed(root) == [2]

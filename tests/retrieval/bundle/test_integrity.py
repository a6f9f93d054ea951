"""Every byte a reader uses is verified before it is trusted: block digests of the files read by row, the manifest's
own digest and its fields, and older bundles without those records still open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store import integrity, names
from cxr_explorer.retrieval.bundle.store.errors import BundleError, DamagedBundleError
from cxr_explorer.retrieval.engine.cases import CaseStore
from cxr_explorer.retrieval.engine.facets import detect_separators
from tests.helpers.bundles import random_arrays, write_test_bundle
from tests.helpers.damage import (
    as_older_bundle,
    current_folder,
    edit_manifest,
    flip_bit,
    flip_patch_row,
    record_checksums,
)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """20 items with 8x8 patch grids (16 KiB of patches per row: four rows per checked block)."""
    return write_test_bundle(tmp_path / "b", grid_shape=(8, 8), **random_arrays(20, grid=(8, 8)))


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.startswith("damaged bundle: ")
    return text


def test_every_data_file_is_recorded_and_the_row_files_have_block_digests(bundle: Path) -> None:
    folder = current_folder(bundle)
    with Bundle.open(bundle) as b:
        assert b.verifiable and b.verify() == []
        files = b.manifest["files"]
    for name in integrity.BLOCKED:
        if name in files:
            assert (folder / names.block_digests(name)).stat().st_size == 32 * -(-files[name]["bytes"] // 65536)
    assert "blocks" in files[names.PATCHES] and "blocks" not in files[names.IMAGE_EMB]


def test_a_flipped_patch_row_opens_but_is_refused_when_read_other_blocks_still_read(bundle: Path) -> None:
    flip_patch_row(bundle, 17)
    with Bundle.open(bundle) as b:  # opening does not read the patches
        patches = b.patches()
        np.testing.assert_array_equal(patches[[0, 1]].shape, (2, 8, 8, 128))  # rows in a clean block
        with pytest.raises(DamagedBundleError) as exc:
            patches[[17]]
        line = one_line(exc)
        assert names.PATCHES in line and "block 4" in line and f"cxr-explorer info {bundle} --verify" in line
        assert b.verify() == [names.PATCHES]


def test_damaged_block_digests_are_refused(bundle: Path) -> None:
    flip_bit(current_folder(bundle) / names.block_digests(names.PATCHES), 3)
    with Bundle.open(bundle) as b, pytest.raises(DamagedBundleError, match="block digests"):
        b.patches()[0]


def test_a_damaged_thumbnail_is_refused(bundle: Path) -> None:
    with Bundle.open(bundle) as b:
        offset = int(np.load(current_folder(bundle) / names.THUMBS_INDEX)[3][0])
    flip_bit(current_folder(bundle) / names.THUMBS, offset + 10)
    with Bundle.open(bundle) as b, pytest.raises(DamagedBundleError, match=names.THUMBS):
        b.thumbnail(3)


def test_a_flipped_manifest_bit_is_refused_on_opening(bundle: Path) -> None:
    path = current_folder(bundle) / names.MANIFEST
    text = path.read_text()
    path.write_text(text.replace('"count": 20', '"count": 21'))  # one bit: 0x30 -> 0x31
    with pytest.raises(DamagedBundleError) as exc:
        Bundle.open(bundle)
    assert names.MANIFEST in one_line(exc) and names.MANIFEST_DIGEST in str(exc.value)


def test_a_changed_label_separator_is_refused(bundle: Path) -> None:
    edit_manifest(bundle, lambda m: m.update(label_separators={"view": ":"}))
    with pytest.raises(DamagedBundleError, match=names.MANIFEST):
        Bundle.open(bundle)


@pytest.mark.parametrize(("change", "field"), [
    (lambda m: m.update(count="20"), "count"),
    (lambda m: m.update(count=21), "count"),
    (lambda m: m.update(metadata_columns=["viewz", "age"]), "metadata_columns"),
    (lambda m: m["indexes"]["images"].update(params={"nprobe": "x"}), "indexes.images"),
    (lambda m: m["indexes"].pop("reports"), "indexes"),
    (lambda m: m.update(grid_shape=[8]), "grid_shape"),
    (lambda m: m["files"][names.PATCHES].update(bytes=-1), "files"),
    (lambda m: m.update(label_separators=[";"]), "label_separators"),
])
def test_a_manifest_field_of_the_wrong_shape_is_one_line_naming_it(bundle: Path, change: Any, field: str) -> None:
    """Even when its digest matches (a faulty writer) or is absent (an older bundle)."""
    edit_manifest(bundle, change, reseal=True)
    with pytest.raises(DamagedBundleError) as exc:
        Bundle.open(bundle)
    assert names.MANIFEST in one_line(exc) and field in str(exc.value)


@pytest.mark.parametrize("content", ["[]", "null", "{", '"x"'])
def test_a_manifest_that_is_not_an_object_is_one_line(bundle: Path, content: str) -> None:
    as_older_bundle(bundle)
    (current_folder(bundle) / names.MANIFEST).write_text(content)
    with pytest.raises(DamagedBundleError) as exc:
        Bundle.open(bundle)
    assert names.MANIFEST in one_line(exc)


def test_a_manifest_that_lost_its_digest_is_refused(bundle: Path) -> None:
    (current_folder(bundle) / names.MANIFEST_DIGEST).unlink()
    with pytest.raises(DamagedBundleError, match="manifest.sha256 is missing"):
        Bundle.open(bundle)


def test_an_older_bundle_without_integrity_records_opens_and_says_so(bundle: Path) -> None:
    as_older_bundle(bundle)
    with Bundle.open(bundle) as b:
        assert not b.verifiable and b.verify() == []
        assert isinstance(b.patches(), np.ndarray) and b.patches()[3].shape == (8, 8, 128)
        assert len(b.thumbnail(2)) > 0


def test_an_older_bundle_with_flipped_patches_refuses_the_grid(bundle: Path) -> None:
    """No block digests to catch it: the similarities leave [-1, 1], and the map is refused, never drawn."""
    as_older_bundle(bundle)
    flip_patch_row(bundle, 5)
    record_checksums(bundle)
    with Bundle.open(bundle) as b:
        cases = CaseStore(b)
        text = np.zeros(128, np.float32)
        text[0] = 1.0  # the flipped values are the even ones
        cases.check_similarities([4], cases.stored_patches([4]) @ text)
        with pytest.raises(DamagedBundleError) as exc:
            cases.check_similarities([5], cases.stored_patches([5]) @ text)
        assert "row 5" in one_line(exc) and "outside [-1, 1]" in str(exc.value)


def test_appending_from_a_damaged_version_writes_nothing(bundle: Path, tmp_path: Path) -> None:
    flip_patch_row(bundle, 2)
    before = sorted(p.name for p in (bundle / names.VERSIONS).iterdir())
    with Bundle.open(bundle) as b, pytest.raises(DamagedBundleError, match="nothing was written"):
        b.as_part()
    assert sorted(p.name for p in (bundle / names.VERSIONS).iterdir()) == before


def test_separators_of_an_older_bundle_ignore_list_columns(bundle: Path) -> None:
    as_older_bundle(bundle, drop=("label_separators",))
    with Bundle.open(bundle) as b:
        assert "label_separators" not in b.manifest
        assert b.label_separators == {}
    meta = b.metadata.assign(labels=["A;B"] * 20)
    assert detect_separators(meta) == {"labels": ";"}  # the sentences list column is skipped, not a TypeError


def test_info_verify_opens_a_bundle_whose_small_files_are_damaged(bundle: Path) -> None:
    flip_bit(current_folder(bundle) / names.IMAGE_EMB, 200)
    with pytest.raises(DamagedBundleError, match=names.IMAGE_EMB):
        Bundle.open(bundle)
    with Bundle.open(bundle, check_files=False) as b:
        assert b.verify() == [names.IMAGE_EMB]


def test_errors_keep_their_old_import_path() -> None:
    from cxr_explorer.retrieval.bundle import reader

    assert reader.BundleError is BundleError and issubclass(DamagedBundleError, BundleError)

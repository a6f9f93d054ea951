"""Derived files of a version (retrieval.bundle.writer.DERIVED and a job's own steps): the one way to add a file.

Each step writes into the staged version; its manifest entries and the checksums of its files land in the
manifest, so the file is installed, verified on opening and checked by ``verify``. Parts are built by keyword only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cxr_explorer.retrieval.bundle.reader import Bundle, BundleError, Part
from cxr_explorer.retrieval.bundle.store import WriterLock, names
from cxr_explorer.retrieval.bundle.writer import DERIVED, Derived, write_version
from cxr_explorer.retrieval.inputs.image_hash import HASH_BYTES, has_hash
from tests.helpers.bundles import GRID, IDENTITY, random_arrays
from tests.retrieval.bundle.test_bundle import vdir


def _part(n: int = 5) -> Part:
    a = random_arrays(n)
    meta = a["metadata"].assign(image_abspath="/x", sentences=[[]] * n,
                                labels=["Edema|Effusion" if i % 2 else "Edema" for i in range(n)])
    return Part(metadata=meta, image_emb=a["image_emb"], patches=a["patches"], thumbnails=a["thumbnails"],
                report_emb=a["report_emb"], report_rows=a["report_rows"], sentence_emb=a["sentence_emb"],
                sentences=a["sentences"], skipped=a["skipped"])


def _note(staging: Path, manifest: dict[str, Any]) -> Derived:
    """A job's own step: one small file made from the staged version (its item count)."""
    (staging / "note.json").write_text(json.dumps({"items": manifest["count"]}), encoding="utf-8")
    return Derived({"note": {"file": "note.json"}}, ["note.json"])


def _write(root: Path, **kw: Any) -> Bundle:
    with WriterLock(root):
        write_version(root, [_part()], identity=IDENTITY, spec={}, preprocessing={"resize": 512, "crop": 480},
                      grid_shape=GRID, build={"label_sep": "|"}, **kw)
    return Bundle.open(root)


def test_every_version_gets_the_registered_derived_files(tmp_path: Path) -> None:
    assert list(DERIVED) == ["label_separators", "projections", "image_hashes"]
    with _write(tmp_path / "b") as b:
        assert b.manifest["label_separators"] == {"labels": "|"} == b.label_separators
        assert b.manifest["projections"]["file"] == names.PROJECTIONS
        assert names.PROJECTIONS in b.manifest["files"] and (b.folder / names.PROJECTIONS).is_file()
        assert list(b.manifest)[-3:] == ["label_separators", "projections", "image_hashes"]  # after the data files
        hashes = b.image_hashes()
        assert hashes is not None and hashes.shape == (5, HASH_BYTES) and hashes.dtype == np.uint8
        assert names.IMAGE_HASHES in b.manifest["files"] and has_hash(hashes).all()
        assert b.verify() == []


def test_a_jobs_own_step_is_installed_checksummed_and_verified(tmp_path: Path) -> None:
    root = tmp_path / "b"
    with _write(root, steps={"note": _note}) as b:
        assert b.manifest["note"] == {"file": "note.json"} and list(b.manifest)[-1] == "note"
        assert json.loads((b.folder / "note.json").read_text(encoding="utf-8")) == {"items": 5}
        assert list(b.manifest["files"])[-2:] == [names.IMAGE_HASHES, "note.json"]  # steps run in order
    (vdir(root) / "note.json").write_text(json.dumps({"items": 6}), encoding="utf-8")  # same size, other bytes
    with pytest.raises(BundleError, match="note.json, differs from its checksum"):
        Bundle.open(root)


def test_parts_are_built_by_keyword_only() -> None:
    a = random_arrays(1)
    with pytest.raises(TypeError):
        Part(a["metadata"], a["image_emb"], a["patches"], a["thumbnails"], a["report_emb"],  # type: ignore[misc]
             a["report_rows"], a["sentence_emb"], a["sentences"])
    assert _part(1).count == 1 and np.asarray(_part(1).report_rows).dtype == np.int64

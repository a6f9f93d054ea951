"""Tests for retrieval.bundle.reader (a dedicated format test: it names files): round trip, indexes, refusals."""

from __future__ import annotations

import io as pyio
import json
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxr_explorer.retrieval.bundle.reader import FORMAT_VERSION, Bundle, BundleError, Part
from cxr_explorer.retrieval.bundle.store import WriterLock, versions
from cxr_explorer.retrieval.bundle.store.integrity import CheckedRows
from cxr_explorer.retrieval.bundle.writer import build_index, write_version
from tests.helpers.bundles import DIM, GRID, IDENTITY, random_arrays, unit_vectors, write_test_bundle
from tests.helpers.damage import edit_manifest

D = DIM


def vdir(root: Path) -> Path:
    """The folder of the current version of ``root``."""
    number = versions.current(root)
    assert number is not None
    return versions.folder_of(root, number)


def test_round_trip(tmp_path: Path) -> None:
    arrays = random_arrays()
    b = Bundle.open(write_test_bundle(tmp_path / "b"), expect_model="tiny-random")
    assert b.count == 5 and b.model_name == "tiny-random" and b.grid_shape == GRID
    assert b.preprocessing.crop == 480 and b.metadata_columns == ["view", "age"]
    assert list(b.metadata["id"]) == [f"img{i}" for i in range(5)]
    assert b.metadata["age"].tolist() == ["30", "31", "32", "33", "34"]  # metadata stored as text
    assert b.metadata["sentences"].iloc[0] == ["No effusion.", "Heart normal."]
    assert b.metadata["sentences"].iloc[1] == []
    assert b.image_path(1) == Path("images/img1.png").absolute()
    assert b.row_of("img3") == 3
    np.testing.assert_array_equal(b.ids("reports"), arrays["report_rows"])
    np.testing.assert_array_equal(b.ids("images"), np.arange(5))
    assert len(b.ids("sentences")) == len(b.sentences) == 6 and b.sentences["row"].tolist()[:2] == [0, 0]
    np.testing.assert_allclose(b.vectors("images"), arrays["image_emb"])
    p = b.patches()
    assert isinstance(p, CheckedRows) and isinstance(p.array, np.memmap)  # memory-mapped, rows checked on read
    assert p.dtype == np.float16 and p.shape == (5, *GRID, D)
    assert b.thumbnail(2) == arrays["thumbnails"][2] and Image.open(pyio.BytesIO(b.thumbnail(4))).size == (8, 6)
    assert b.skipped[0]["reason"] == "corrupt"
    assert pd.read_csv(b.skipped_csv)["reason"].tolist() == ["corrupt"]
    for target in ("images", "reports", "sentences"):
        vecs = b.vectors(target)
        scores, pos = b.index(target).search(np.ascontiguousarray(vecs[:1]), 1)
        assert pos[0, 0] == 0 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert b.verify() == []
    assert b.version == 1 and b.folder == tmp_path / "b" / "versions" / "000001"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["CURRENT", "versions", "writer.lock"]


def test_unknown_id_and_target(tmp_path: Path) -> None:
    b = Bundle.open(write_test_bundle(tmp_path / "b"))
    with pytest.raises(BundleError, match="nope"):
        b.row_of("nope")
    with pytest.raises(BundleError, match="unknown search target"):
        b.ids("pixels")  # type: ignore[arg-type]


def test_model_mismatch_refused(tmp_path: Path) -> None:
    root = write_test_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match=r"built with model 'tiny-random', not 'biovil'.*cxr-explorer build c.csv"):
        Bundle.open(root, expect_model="biovil")
    b = Bundle.open(root)
    with pytest.raises(BundleError, match="revision"):
        b.check_model({"name": "tiny-random", "revision": "v9", "image_md5": None})
    b.check_model(IDENTITY)


def test_format_version_refused(tmp_path: Path) -> None:
    root = write_test_bundle(tmp_path / "b")
    edit_manifest(root, lambda m: m.update(format_version=FORMAT_VERSION + 1), reseal=True)
    with pytest.raises(BundleError, match=f"format version {FORMAT_VERSION + 1}.*rebuild it with"):
        Bundle.open(root)


def test_missing_unfinished_and_damaged(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.open(tmp_path)
    (tmp_path / "_build" / "chunks").mkdir(parents=True)
    with pytest.raises(BundleError, match="unfinished"):
        Bundle.open(tmp_path)
    root = write_test_bundle(tmp_path / "b")
    with open(vdir(root) / "image_emb.npy", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(BundleError, match="damaged bundle: .*image_emb.npy, missing or has the wrong size"):
        Bundle.open(root)


def test_no_reports_no_sentences(tmp_path: Path) -> None:
    arrays = random_arrays(3)
    arrays["metadata"]["report"] = ""
    empty = np.zeros((0, D), np.float32)
    root = write_test_bundle(tmp_path / "b", metadata=arrays["metadata"],
                             sentences=pd.DataFrame({"row": [], "text": []}), image_emb=arrays["image_emb"],
                             patches=arrays["patches"], thumbnails=arrays["thumbnails"], report_emb=empty,
                             report_rows=np.zeros(0, np.int64), sentence_emb=empty, skipped=[])
    b = Bundle.open(root)
    assert b.count == 3 and len(b.ids("reports")) == 0 and b.index("sentences").ntotal == 0
    assert b.index("reports").search(unit_vectors(np.random.default_rng(0), 1, D), 3)[1].tolist() == [[-1, -1, -1]]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_build_index_finds_itself(kind: str) -> None:
    x = unit_vectors(np.random.default_rng(1), 400, D)
    index, info = build_index(x, kind, use_gpu=False)
    assert info["type"] == kind and info["count"] == 400
    if kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = info["params"]["nlist"]
    _, pos = index.search(x[:20], 1)
    assert pos[:, 0].tolist() == list(range(20))


def test_build_index_bad_type() -> None:
    with pytest.raises(BundleError, match="unknown index type"):
        build_index(np.zeros((1, D), np.float32), "lsh")


def test_write_version_offsets(tmp_path: Path) -> None:
    parts = []
    for k in range(2):
        a = random_arrays(5, seed=k, prefix=f"p{k}-")
        meta = a["metadata"].assign(image_abspath="/x", sentences=[[]] * 5)
        parts.append(Part(metadata=meta, image_emb=a["image_emb"], patches=a["patches"], thumbnails=a["thumbnails"],
                          report_emb=a["report_emb"], report_rows=a["report_rows"], sentence_emb=a["sentence_emb"],
                          sentences=a["sentences"], skipped=a["skipped"]))
    root = tmp_path / "b"
    with WriterLock(root):
        assert write_version(root, parts, identity=IDENTITY, spec={}, preprocessing={"resize": 512, "crop": 480},
                             grid_shape=GRID) == 1
    b = Bundle.open(root)
    assert b.count == 10 and b.metadata["id"].iloc[5] == "p1-0"
    np.testing.assert_array_equal(b.ids("reports"), np.r_[parts[0].report_rows, parts[1].report_rows + 5])
    assert b.sentences["row"].max() == 9
    np.testing.assert_array_equal(b.patches()[5:], parts[1].patches)
    assert b.thumbnail(7) == parts[1].thumbnails[2] and len(b.skipped) == 2
    again = b.as_part()
    assert again.count == 10 and again.covered_ids()[:2] == ["p0-0", "p0-1"]


def test_a_format_1_bundle_asks_for_a_rebuild_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "cxr-explorer-bundle", "format_version": 1}))
    with pytest.raises(BundleError, match=r"format version 1 \(a flat folder\).*rebuild it") as info:
        Bundle.open(tmp_path)
    assert "\n" not in str(info.value)


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["images.faiss", "image_emb.npy", "metadata.parquet", "report_rows.npy"])
def test_a_flipped_byte_is_refused_on_open(tmp_path: Path, name: str) -> None:
    """Same size, other bytes: the open-time checksum names the file instead of ranking corrupted vectors."""
    root = write_test_bundle(tmp_path / "b")
    _flip_byte(vdir(root) / name, (vdir(root) / name).stat().st_size // 2)
    with pytest.raises(BundleError, match=f"damaged bundle: .*{name}, differs from its checksum in the manifest"):
        Bundle.open(root)


def test_a_manifest_without_required_keys_is_one_line(tmp_path: Path) -> None:
    root = write_test_bundle(tmp_path / "b")
    edit_manifest(root, lambda m: [m.pop("model"), m.pop("count")], reseal=True)
    with pytest.raises(BundleError, match='manifest.json, field "count": .*and 1 more'):
        Bundle.open(root)


@pytest.mark.parametrize(("name", "read"), [("images.faiss", lambda b: b.index("images")),
                                            ("patches.npy", lambda b: b.patches()),
                                            ("metadata.parquet", lambda b: b.metadata)])
def test_damaged_headers_of_large_files_fail_in_one_line_when_read(tmp_path: Path, name: str, read,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Files above the open-time checksum size are read lazily: a damaged header is a BundleError naming the
    file and ``info --verify``, not a FAISS/numpy/arrow traceback."""
    monkeypatch.setattr("cxr_explorer.retrieval.bundle.reader.QUICK_VERIFY_BYTES", 0)
    root = write_test_bundle(tmp_path / "b")
    for at in range(0, 8):
        _flip_byte(vdir(root) / name, at)
    bundle = Bundle.open(root)
    with pytest.raises(BundleError, match=f"damaged bundle: .*{name}, .*info .* --verify"):
        read(bundle)

"""Synthetic corpora for the index job tests: small PNG / JPEG / DICOM files, good and hostile CSVs, long reports.

Plain functions and constants; the fixtures (``tiny_model``, ``build``) live in ``tests/conftest.py``."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

IDENTIFIERS = ("Doe^Jane", "PID-12345", "19700101", "Springfield", "Jane Doe")
LONG_REPORT = " ".join(f"Finding number {i} shows a small nodule in segment {i % 9} of the lung." for i in range(70))
ODD_REPORT = "<b>Lungs</b> clear [SEP] no [CLS] effusion. ﬁbrosis\x00 noted 😀 [MASK] &amp; [unk] stable."


def png_bytes(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small grayscale PNG with a seeded gradient + noise (never blank)."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = (np.add.outer(np.arange(h), np.arange(w)) * 3 + rng.integers(0, 60, (h, w))) % 256
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(seed))).save(buf, format="JPEG")
    return buf.getvalue()


def bomb_png() -> bytes:
    """A PNG whose header claims 30000 x 30000 pixels (a decompression bomb)."""
    data = bytearray(png_bytes(0))
    ihdr = struct.pack(">II", 30000, 30000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def dicom_bytes(seed: int) -> bytes:
    """A valid DICOM carrying identifiers (name, id, birth date, address) that must never reach a bundle."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")
    meta.MediaStorageSOPInstanceUID = UID(f"1.2.3.4.5.6.{seed}")
    ds = Dataset()
    ds.file_meta = meta
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-12345", "19700101"
    ds.PatientAddress = "1 Main St, Springfield"
    ds.Modality, ds.ViewPosition = "DX", "PA"
    arr = (np.add.outer(np.arange(40), np.arange(50)) * (seed + 7) % 4096).astype(np.uint16)
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel, ds.PixelRepresentation = 16, 12, 11, 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = arr.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_good_csv(root: Path, n: int, name: str = "corpus.csv", start: int = 0) -> Path:
    """``n`` good PNG rows (ids img<k>) with short reports and a ``view`` column."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(start, start + n):
        (root / "images" / f"img{k}.png").write_bytes(png_bytes(k))
        rows.append({"image_path": f"images/img{k}.png", "report": f"Case {k}. No effusion. Heart size normal.",
                     "view": "PA" if k % 2 == 0 else "AP", "patient_id": f"PID-{k}"})
    path = root / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


#: (file name, bytes or None for "do not create", report) of the hostile corpus, in CSV order.
def hostile_rows() -> list[tuple[str, bytes | None, str]]:
    png = png_bytes(5)
    return [
        ("good1.png", png_bytes(1), "No effusion. Heart normal."),
        ("good2.jpg", jpeg_bytes(2), ""),
        ("good3.png", png_bytes(3), LONG_REPORT),
        ("good4.png", png_bytes(4), ODD_REPORT),
        ("good5", png, "Extensionless PNG file."),
        ("good6.dcm", dicom_bytes(6), "A DICOM image."),
        ("missing.png", None, "never there"),
        ("empty.png", b"", "empty file"),
        ("truncated.png", png[: len(png) // 2], "cut in half"),
        ("corrupt.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "garbage after the magic"),
        ("text.png", b"this is a text file, not an image\n" * 20, "a text file"),
        ("bomb.png", bomb_png(), "claims to be huge"),
        ("bad.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 40, "unreadable DICOM"),
    ]


GOOD = ("good1.png", "good2.jpg", "good3.png", "good4.png", "good5", "good6.dcm")


def write_hostile_csv(root: Path) -> Path:
    """The hostile corpus plus a duplicate row and a row without an image path."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for name, data, report in hostile_rows():
        if data is not None:
            (root / "images" / name).write_bytes(data)
        rows.append({"image_path": f"images/{name}", "report": report, "view": "PA"})
    rows.append({"image_path": "images/good1.png", "report": "duplicate row", "view": "AP"})
    rows.append({"image_path": "", "report": "no image", "view": "AP"})
    path = root / "hostile.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def dying_initializer(*_: object) -> None:
    """A decode-worker initializer that kills its process: simulates workers that cannot start at all."""
    import os

    os._exit(3)


def assert_same_bundle(a: Path, b: Path) -> None:
    """Same ids exactly once, same image/report vectors and patches per id."""
    from cxr_explorer.retrieval.bundle.reader import Bundle

    x, y = Bundle.open(a), Bundle.open(b)
    assert x.metadata["id"].is_unique and y.metadata["id"].is_unique
    assert sorted(x.metadata["id"]) == sorted(y.metadata["id"])
    order = [y.row_of(i) for i in x.metadata["id"]]
    np.testing.assert_allclose(x.vectors("images"), y.vectors("images")[order], atol=1e-5)
    np.testing.assert_allclose(np.asarray(x.patches(), np.float32), np.asarray(y.patches()[order], np.float32),
                               atol=2e-3)
    rep = {int(r): v for r, v in zip(y.ids("reports"), y.vectors("reports"), strict=True)}
    for r, v in zip(x.ids("reports"), x.vectors("reports"), strict=True):
        np.testing.assert_allclose(v, rep[order[int(r)]], atol=1e-5)
    assert len(x.sentences) == len(y.sentences) and len(x.skipped) == len(y.skipped)

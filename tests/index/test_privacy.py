"""No patient identifier reaches a bundle: DICOM headers are never read for metadata; identifier columns dropped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxr_explorer.cli import main
from cxr_explorer.retrieval.bundle.reader import Bundle
from tests.helpers.corpora import IDENTIFIERS, dicom_bytes, png_bytes


def all_bundle_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def assert_clean(root: Path) -> None:
    files = all_bundle_bytes(root)
    assert len(files) >= 15
    for path, data in files:
        for ident in IDENTIFIERS:
            assert ident.encode() not in data, f"{ident!r} found in {path.name}"
            assert ident.encode("utf-16-le") not in data, f"{ident!r} (utf-16) found in {path.name}"


def test_dicom_folder_bundle_has_no_identifiers(tmp_path: Path) -> None:
    corpus = tmp_path / "dicoms"
    (corpus / "study1").mkdir(parents=True)
    for k in range(3):
        (corpus / "study1" / f"scan{k}.dcm").write_bytes(dicom_bytes(k))
    (corpus / "study1" / "scan3").write_bytes(dicom_bytes(3))  # extensionless DICOM with a preamble
    out = tmp_path / "bundle"
    assert main(["build", str(corpus), "--out", str(out), "--model", "tiny-random", "--workers", "0",
                 "--threads", "1", "--progress", "none", "--hash-ids"]) == 0
    b = Bundle.open(out)
    assert b.count == 4 and b.metadata_columns == []
    assert all(i.startswith("h") and len(i) == 17 for i in b.metadata["id"])
    assert_clean(out)


def test_identifier_columns_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "b.png").write_bytes(png_bytes(2))
    pd.DataFrame({"filename": ["a.png", "b.png"], "report": ["No effusion.", "Clear."], "view": ["PA", "AP"],
                  "PatientName": ["Doe^Jane", "Jane Doe"], "patient_id": ["PID-12345", "PID-12345"],
                  "BirthDate": ["19700101", "19700101"], "Address": ["Springfield", "Springfield"]}
                 ).to_csv(tmp_path / "c.csv", index=False)
    out = tmp_path / "bundle"
    assert main(["build", str(tmp_path / "c.csv"), "--out", str(out), "--model", "tiny-random", "--workers", "0",
                 "--threads", "1", "--progress", "none"]) == 0
    b = Bundle.open(out)
    assert b.metadata_columns == ["view"]
    assert sorted(b.manifest["build"]["columns"]["dropped_cols"]) == ["Address", "BirthDate", "PatientName",
                                                                        "patient_id"]
    assert_clean(out)

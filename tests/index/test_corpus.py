"""Corpus readers: CSV auto-detection, folders, presets, duplicates, identifier columns, fail-fast errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cxr_explorer.index.corpus import CorpusOptions, looks_identifying, make_id, read_corpus
from cxr_explorer.index.presets import CorpusError, detect_preset, mimic_sections
from tests.helpers.corpora import png_bytes


def csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("col", ["image_path", "path", "Image_File", "filename"])
def test_image_column_auto_detect(tmp_path: Path, col: str) -> None:
    c = read_corpus(csv(tmp_path / "c.csv", [{col: "a.png", "report": "x"}]))
    assert c.columns["image_col"] == col and c.items[0].path == "a.png"
    assert c.items[0].abspath == str(tmp_path / "a.png")


def test_text_columns_and_metadata(tmp_path: Path) -> None:
    rows = [{"image_path": "/abs/a.png", "findings": "No effusion", "impression": "Normal.", "view": "PA",
             "report_id": 7, "sentences": "s", "age": ""}]
    c = read_corpus(csv(tmp_path / "c.csv", rows))
    item = c.items[0]
    assert c.columns["text_cols"] == ["findings", "impression"]
    assert item.report == "No effusion. Normal." and item.abspath == "/abs/a.png"
    assert item.metadata == {"view": "PA", "report_id": "7", "corpus_sentences": "s", "age": ""}
    c2 = read_corpus(tmp_path / "c.csv", CorpusOptions(text_cols=("impression",), id_col="report_id"))
    assert c2.items[0].report == "Normal." and c2.items[0].id == "7" and "report_id" not in c2.items[0].metadata


def test_ids_duplicates_and_empty_paths(tmp_path: Path) -> None:
    rows = [{"path": "./x/a.png"}, {"path": "x/a.png"}, {"path": ""}, {"path": "b.png"}]
    c = read_corpus(csv(tmp_path / "c.csv", rows))
    assert [i.id for i in c.items] == ["x/a.png", "b.png"]
    assert [(s["reason"], s["detail"]) for s in c.skipped] == [("duplicate", "row 3 repeats the id of row 2"),
                                                                ("no-path", "row 4 has an empty image path")]
    hashed = read_corpus(tmp_path / "c.csv", CorpusOptions(hash_ids=True))
    assert hashed.items[0].id == make_id("x/a.png", True) and len(hashed.items[0].id) == 17


@pytest.mark.parametrize(("setup", "opts", "message"), [
    ("nothing", {}, "does not exist"),
    ("empty", {}, "is empty"),
    ("header", {}, "no rows"),
    ("noimagecol", {}, "cannot tell which column holds the image paths"),
    ("good", {"image_col": "nope"}, "no column 'nope' for --image-col"),
    ("good", {"text_cols": ("nope",)}, "no column 'nope' for --text-col"),
    ("good", {"id_col": "nope"}, "no column 'nope' for --id-col"),
    ("good", {"keep_cols": ("nope",)}, "no column 'nope' for --keep-col"),
    ("blankpaths", {}, "no usable rows"),
    ("emptydir", {}, "no images found"),
    ("imagedir", {"id_col": "x"}, "--id-col needs a CSV corpus"),
    ("good", {"preset": "nosuch"}, "unknown preset"),
])
def test_misspecified(tmp_path: Path, setup: str, opts: dict, message: str) -> None:
    target = tmp_path / "c.csv"
    if setup == "empty":
        target.write_text("")
    elif setup == "header":
        target.write_text("path,report\n")
    elif setup == "noimagecol":
        csv(target, [{"x": 1}])
    elif setup == "good":
        csv(target, [{"path": "a.png", "report": "r"}])
    elif setup == "blankpaths":
        csv(target, [{"path": "", "report": "r"}])
    elif setup in ("emptydir", "imagedir"):
        target = tmp_path / "d"
        target.mkdir()
        (target / "readme.txt").write_text("x")
        if setup == "imagedir":
            (target / "a.png").write_bytes(png_bytes(0))
    with pytest.raises(CorpusError, match=message):
        read_corpus(target, CorpusOptions(**opts))


def test_folder_corpus(tmp_path: Path) -> None:
    (tmp_path / "sub" / ".hidden").mkdir(parents=True)
    (tmp_path / "sub" / "b.PNG").write_bytes(png_bytes(1))
    (tmp_path / "sub" / "b.txt").write_text("No effusion [SEP] seen.")
    (tmp_path / "a").write_bytes(png_bytes(2))  # extensionless PNG
    (tmp_path / "notes").write_text("plain text, no extension")
    (tmp_path / "fake.jpg").write_text("text with an image extension")  # kept: the decoder will skip it
    (tmp_path / "sub" / ".hidden" / "c.png").write_bytes(png_bytes(3))
    c = read_corpus(tmp_path)
    assert [i.path for i in c.items] == ["a", "fake.jpg", "sub/b.PNG"]
    assert c.items[2].report == "No effusion (SEP) seen." and c.kind == "folder"


def test_identifier_names() -> None:
    for name in ("patient_id", "PatientName", "subject_id", "BirthDate", "MRN", "AccessionNumber", "name", "DOB"):
        assert looks_identifying(name), name
    for name in ("view", "age", "sex", "study_id", "labels", "filename"):
        assert not looks_identifying(name), name


def covid_like(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(png_bytes(0))
    csv(root / "reports.csv", [{"image_id": "case-a", "image_file": "images/a.jpg", "study_id": "s1", "view": "PA",
                                "findings": "Opacity", "impression": "", "labels": "COVID-19", "patient_id": "3"}])
    return root


def test_covid_preset(tmp_path: Path) -> None:
    root = covid_like(tmp_path / "covid")
    assert detect_preset(root) == "covid_chestxray" and detect_preset(root / "reports.csv") == "covid_chestxray"
    c = read_corpus(root)
    assert c.kind == "covid_chestxray" and c.items[0].id == "case-a" and c.items[0].report == "Opacity"
    assert c.columns["dropped_cols"] == ["patient_id"] and "labels" in c.items[0].metadata
    assert read_corpus(root, CorpusOptions(keep_cols=("patient_id",))).items[0].metadata["patient_id"] == "3"
    assert read_corpus(root / "reports.csv", CorpusOptions(preset="none")).items[0].id == "images/a.jpg"


def test_iu_preset_text_only(tmp_path: Path) -> None:
    row = {"image_id": "CXR1_1_IM-0001-4001", "image_file": "", "study_id": "iu_1", "view": "", "projection":
           "Frontal", "findings": "Normal heart.", "impression": "No acute disease.", "labels": "normal", "mesh": "n"}
    path = csv(tmp_path / "reports.csv", [row])
    assert detect_preset(tmp_path) == "iu_xray"
    with pytest.raises(CorpusError, match="text-only IU X-ray corpus.*--images-dir"):
        read_corpus(tmp_path)
    c = read_corpus(path, CorpusOptions(images_dir=tmp_path / "png"))
    assert c.items[0].abspath == str(tmp_path / "png" / "CXR1_1_IM-0001-4001.png")


def test_openi_and_mimic_presets(tmp_path: Path) -> None:
    openi = tmp_path / "openi"
    openi.mkdir()
    csv(openi / "indiana_reports.csv", [{"uid": 1, "MeSH": "normal", "Problems": "normal", "image": "x",
                                         "indication": "", "comparison": "", "findings": "Clear.",
                                         "impression": "Normal."}])
    csv(openi / "indiana_projections.csv", [{"uid": 1, "filename": "1_IM-0001-4001.dcm.png",
                                             "projection": "Frontal"}])
    c = read_corpus(openi)
    assert c.kind == "openi" and c.items[0].id == "1_IM-0001-4001.dcm" and c.items[0].report == "Clear. Normal."
    mimic = tmp_path / "mimic"
    (mimic / "mimic-cxr-reports" / "files" / "p10" / "p10000032").mkdir(parents=True)
    (mimic / "mimic-cxr-reports" / "files" / "p10" / "p10000032" / "s50414267.txt").write_text(
        "EXAMINATION: CHEST\n\nFINDINGS: No focal consolidation.\n\nIMPRESSION: No acute process.\n")
    csv(mimic / "mimic-cxr-2.0.0-metadata.csv", [{"dicom_id": "d1", "subject_id": "10000032", "study_id": "50414267",
                                                  "ViewPosition": "PA", "StudyDate": "21800506"}])
    c = read_corpus(mimic)
    item = c.items[0]
    assert c.kind == "mimic_cxr_jpg" and item.id == "d1"
    assert item.path == "files/p10/p10000032/s50414267/d1.jpg"
    assert item.report == "No focal consolidation. No acute process."
    assert "subject_id" not in item.metadata and "StudyDate" not in item.metadata
    assert mimic_sections("just text") == ("just text", "")

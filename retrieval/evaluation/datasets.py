"""Readers that turn annotation / label CSVs into evaluation cases (no model code, no CLI code).

* Phrase grounding: MS-CXR format (``MS_CXR_Local_Alignment_v1.0.0.csv``: ``dicom_id`` and/or ``path``,
  ``label_text`` (the phrase), ``category_name`` (the finding), ``x, y, w, h`` (box, top-left origin, pixels of the
  original image), ``image_width``, ``image_height``; several rows of one image-phrase are several boxes), and an
  adapter for covid_chestxray's ``boxes.csv`` (lung boxes), which is mapped to the MS-CXR columns.
* Zero-shot: a labelled image CSV (image column + label column), binarised by a 0/1 column or a regex.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.evaluation.metrics import Box

MSCXR_COLUMNS = ("label_text", "category_name", "x", "y", "w", "h")
COVID_BOX_COLUMNS = ("image_id", "label", "x", "y", "w", "h")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm", ".dicom")
COVID_NEGATIVE = r"^\s*No Finding\s*$"


class AnnotationError(ValueError):
    """An annotation or label file that cannot be used (missing file, column or value); message names it."""


@dataclass(frozen=True)
class GroundingCase:
    """One (image, phrase) pair: its boxes ``(x, y, w, h)`` in pixels of an image of ``size`` (width, height)."""

    key: str
    image: Path
    phrase: str
    finding: str
    boxes: tuple[Box, ...]
    size: tuple[int, int] | None


@dataclass(frozen=True)
class LabelledImage:
    """One image with a binary label (1 = positive class) and the raw label text it came from."""

    key: str
    image: Path
    label: int
    raw: str


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV as strings-or-numbers; a missing or unreadable file is an :class:`AnnotationError`."""
    p = Path(path)
    if not p.is_file():
        raise AnnotationError(f"annotation file {p} does not exist")
    try:
        return pd.read_csv(p, comment=None)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise AnnotationError(f"cannot read {p} as CSV: {exc}") from None


def covid_boxes_to_mscxr(boxes_csv: str | Path, reports_csv: str | Path | None = None) -> pd.DataFrame:
    """covid_chestxray ``boxes.csv`` (+ its ``reports.csv`` for file names and sizes) in MS-CXR columns.

    Phrase = the box label in lower case ("right lung" / "left lung", patient side), finding = the label.
    """
    boxes = read_csv(boxes_csv)
    reports = read_csv(reports_csv or Path(boxes_csv).with_name("reports.csv"))
    for col in ("image_id", "image_file", "width", "height"):
        if col not in reports.columns:
            raise AnnotationError(f"{reports_csv} has no column {col!r} (needed to place the covid boxes)")
    info = reports.drop_duplicates("image_id").set_index("image_id")
    missing = sorted(set(boxes["image_id"]) - set(info.index))
    if missing:
        raise AnnotationError(f"{len(missing)} box image ids are not in the reports CSV, e.g. {missing[0]!r}")
    sub = info.loc[boxes["image_id"]]
    return pd.DataFrame({
        "dicom_id": boxes["image_id"].astype(str).to_numpy(), "path": sub["image_file"].astype(str).to_numpy(),
        "label_text": boxes["label"].astype(str).str.lower().to_numpy(), "category_name": boxes["label"].astype(str),
        "x": boxes["x"].astype(float), "y": boxes["y"].astype(float), "w": boxes["w"].astype(float),
        "h": boxes["h"].astype(float), "image_width": sub["width"].astype(int).to_numpy(),
        "image_height": sub["height"].astype(int).to_numpy(),
    })


def _find_image(images_dir: Path, row: pd.Series) -> Path:
    """The image file of an annotation row: ``path`` under ``images_dir``, else ``dicom_id`` + a known suffix."""
    if "path" in row and isinstance(row["path"], str) and row["path"]:
        candidate = images_dir / row["path"]
        if candidate.is_file() or "dicom_id" not in row:
            return candidate
        for suffix in IMAGE_SUFFIXES:  # MS-CXR paths name .dcm files; MIMIC-CXR-JPG has .jpg beside them
            if candidate.with_suffix(suffix).is_file():
                return candidate.with_suffix(suffix)
    key = str(row.get("dicom_id", ""))
    for suffix in IMAGE_SUFFIXES:
        if (images_dir / f"{key}{suffix}").is_file():
            return images_dir / f"{key}{suffix}"
    return images_dir / (row["path"] if isinstance(row.get("path"), str) else key)


def grounding_frame(csv: str | Path) -> pd.DataFrame:
    """Annotation rows in MS-CXR columns, from an MS-CXR CSV or a covid_chestxray ``boxes.csv`` (auto-detected)."""
    table = read_csv(csv)
    if all(c in table.columns for c in MSCXR_COLUMNS):
        if "dicom_id" not in table.columns and "path" not in table.columns:
            raise AnnotationError(f"{csv} needs a 'dicom_id' or 'path' column to find the images")
        return table
    if all(c in table.columns for c in COVID_BOX_COLUMNS):
        return covid_boxes_to_mscxr(csv)
    raise AnnotationError(f"{csv} is neither MS-CXR format (columns {', '.join(MSCXR_COLUMNS)} + dicom_id/path) "
                          f"nor covid_chestxray boxes.csv ({', '.join(COVID_BOX_COLUMNS)}); it has "
                          f"{', '.join(map(str, table.columns))}")


def read_grounding_cases(csv: str | Path, images_dir: str | Path | None = None) -> list[GroundingCase]:
    """One :class:`GroundingCase` per (image, phrase, finding); images are looked up under ``images_dir``
    (default: the CSV's folder)."""
    table = grounding_frame(csv)
    root = Path(images_dir) if images_dir is not None else Path(csv).parent
    key_col = "dicom_id" if "dicom_id" in table.columns else "path"
    for col in ("x", "y", "w", "h"):
        if not pd.to_numeric(table[col], errors="coerce").notna().all():
            raise AnnotationError(f"{csv}: column {col!r} has non-numeric or empty values")
    cases: list[GroundingCase] = []
    for (key, phrase, finding), group in table.groupby([key_col, "label_text", "category_name"], sort=False):
        first = group.iloc[0]
        size = None
        if "image_width" in group.columns and "image_height" in group.columns:
            w, h = first["image_width"], first["image_height"]
            size = (int(w), int(h)) if pd.notna(w) and pd.notna(h) else None
        boxes = tuple((float(r.x), float(r.y), float(r.w), float(r.h)) for r in group.itertuples())
        cases.append(GroundingCase(key=str(key), image=_find_image(root, first), phrase=str(phrase),
                                   finding=str(finding), boxes=boxes, size=size))
    return cases


def scale_boxes(boxes: tuple[Box, ...], annotated: tuple[int, int] | None, actual: tuple[int, int]
                ) -> tuple[Box, ...]:
    """Boxes given for an image of ``annotated`` (w, h) size, rescaled to the ``actual`` decoded size."""
    if annotated is None or annotated == actual:
        return boxes
    sx, sy = actual[0] / annotated[0], actual[1] / annotated[1]
    return tuple((x * sx, y * sy, w * sx, h * sy) for x, y, w, h in boxes)


def _pick(table: pd.DataFrame, wanted: str | None, candidates: tuple[str, ...], what: str, csv: str | Path) -> str:
    if wanted is not None:
        if wanted not in table.columns:
            raise AnnotationError(f"{csv} has no column {wanted!r}; columns: {', '.join(map(str, table.columns))}")
        return wanted
    for c in candidates:
        if c in table.columns:
            return c
    raise AnnotationError(f"{csv}: cannot tell which column holds the {what}; pass it (one of "
                          f"{', '.join(map(str, table.columns))})")


def binarise(values: pd.Series, positive_match: str | None, negative_match: str | None) -> np.ndarray:
    """``[n]`` 0/1 labels: 0/1/true/false values as they are, else by regex (positive wins; the other rule's
    complement when only one is given)."""
    text = values.fillna("").astype(str).str.strip()
    lowered = text.str.lower()
    if positive_match is None and negative_match is None:
        if lowered.isin(["0", "1", "0.0", "1.0", "true", "false"]).all():
            return lowered.isin(["1", "1.0", "true"]).to_numpy().astype(np.int64)
        raise AnnotationError("labels are not 0/1; give --positive-match or --negative-match (a regex)")
    if positive_match is not None:
        pos = text.map(lambda s: bool(re.search(positive_match, s, re.IGNORECASE)))
        return pos.to_numpy().astype(np.int64)
    neg = text.map(lambda s: bool(re.search(negative_match or "", s, re.IGNORECASE)))
    return (~neg).to_numpy().astype(np.int64)


def read_labelled_images(csv: str | Path, images_dir: str | Path | None = None, image_column: str | None = None,
                         label_column: str | None = None, positive_match: str | None = None,
                         negative_match: str | None = None) -> tuple[list[LabelledImage], dict[str, str | None]]:
    """Labelled images and the rule used; covid_chestxray's reports.csv defaults to "No Finding" = negative."""
    table = read_csv(csv)
    img_col = _pick(table, image_column, ("path", "image_file", "image", "file", "dicom_id"), "image paths", csv)
    lab_col = _pick(table, label_column, ("label", "labels", "pneumonia", "target"), "labels", csv)
    if positive_match is None and negative_match is None and {"image_file", "labels"} <= set(table.columns):
        negative_match = COVID_NEGATIVE  # covid_chestxray: every finding but "No Finding" is a pneumonia
    table = table[table[img_col].notna()].reset_index(drop=True)
    y = binarise(table[lab_col], positive_match, negative_match)
    root = Path(images_dir) if images_dir is not None else Path(csv).parent
    key_col = "image_id" if "image_id" in table.columns else img_col
    items = [LabelledImage(key=str(k), image=root / str(p), label=int(v), raw=str(r))
             for k, p, v, r in zip(table[key_col], table[img_col], y, table[lab_col], strict=True)]
    rule = {"image_column": img_col, "label_column": lab_col, "positive_match": positive_match,
            "negative_match": negative_match}
    return items, rule

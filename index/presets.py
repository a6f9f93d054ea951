"""Known corpus layouts: each preset turns its files into one table plus the columns to use.

Presets: ``covid_chestxray`` and ``iu_xray`` (the two corpora under ``../shared/data``), ``openi`` (the Kaggle
Indiana layout: indiana_reports.csv + indiana_projections.csv + images/images_normalized/) and ``mimic_cxr_jpg``
(MIMIC-CXR-JPG metadata CSV + files/ + the MIMIC-CXR report .txt files). Credentialed corpora are documented, never
shipped. Explicit --image-col/--text-col/--id-col options override what a preset chooses.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxr_explorer.index.textfiles import NotUtf8Error, TextStats, read_csv_text, read_report_file

__all__ = ["PRESETS", "CorpusError", "PresetTable", "detect_preset", "load_preset", "read_csv"]


class CorpusError(ValueError):
    """A mis-specified corpus (no such file or column, empty CSV, no images): reported before any work."""


@dataclass(frozen=True)
class PresetTable:
    """A corpus as one table of str cells; image paths are relative to ``base_dir`` unless absolute."""

    name: str
    table: pd.DataFrame
    base_dir: Path
    image_col: str
    text_cols: tuple[str, ...]
    id_col: str | None


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV (or .csv.gz) with every cell as str ("" when empty); CorpusError when unreadable or without rows.

    Encoding (BOM or UTF-8) and delimiter are detected (``index.textfiles``) and kept in ``table.attrs["csv"]``.
    """
    try:
        found = read_csv_text(path)
        table = pd.read_csv(io.StringIO(found.text), sep=found.delimiter, dtype=str, keep_default_na=False,
                            comment=None)
    except FileNotFoundError:
        raise CorpusError(f"corpus file {path} does not exist") from None
    except NotUtf8Error as exc:
        raise CorpusError(str(exc)) from None
    except pd.errors.EmptyDataError:
        raise CorpusError(f"corpus CSV {path} is empty (no header, no rows)") from None
    except (pd.errors.ParserError, OSError, EOFError) as exc:
        raise CorpusError(f"cannot read corpus CSV {path}: {str(exc).splitlines()[0]}") from None
    if table.empty:
        raise CorpusError(f"corpus CSV {path} has a header but no rows")
    table.columns = [str(c).strip() for c in table.columns]
    table.attrs["csv"] = found.describe()
    return table


def _covid(source: Path, images_dir: Path | None, reports_dir: Path | None) -> PresetTable:
    csv = source / "reports.csv" if source.is_dir() else source
    return PresetTable("covid_chestxray", read_csv(csv), images_dir or csv.parent, "image_file",
                       ("findings", "impression"), "image_id")


def _iu(source: Path, images_dir: Path | None, reports_dir: Path | None) -> PresetTable:
    csv = source / "reports.csv" if source.is_dir() else source
    table = read_csv(csv)
    if images_dir is None and not table["image_file"].str.strip().any():
        raise CorpusError(f"{csv} is the text-only IU X-ray corpus (its image_file column is empty): pass "
                          "--images-dir with the Open-i NLMCXR_png folder (files named <image_id>.png)")
    if images_dir is not None:
        table["image_file"] = [f or f"{i}.png" for f, i in zip(table["image_file"], table["image_id"], strict=True)]
    return PresetTable("iu_xray", table, images_dir or csv.parent, "image_file", ("findings", "impression"),
                       "image_id")


def _openi(source: Path, images_dir: Path | None, reports_dir: Path | None) -> PresetTable:
    reports = read_csv(source / "indiana_reports.csv")
    projections = read_csv(source / "indiana_projections.csv")
    table = projections.merge(reports, on="uid", how="left").fillna("")
    table.insert(0, "image_id", [Path(f).stem for f in table["filename"]])
    base = images_dir or source / "images" / "images_normalized"
    return PresetTable("openi", table, base, "filename", ("findings", "impression"), "image_id")


_MIMIC_SECTION = re.compile(r"^\s*(FINDINGS|IMPRESSION)\s*:", re.M)


def mimic_sections(text: str) -> tuple[str, str]:
    """(findings, impression) of a MIMIC-CXR report; the whole text as findings when neither header is found."""
    parts = _MIMIC_SECTION.split(text)
    found = {parts[i].upper(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if not found:
        return text.strip(), ""
    return found.get("FINDINGS", ""), found.get("IMPRESSION", "")


def _read_report(path: Path, stats: TextStats) -> tuple[str, str]:
    try:
        return mimic_sections(read_report_file(path, stats))
    except OSError:
        return "", ""


def _mimic(source: Path, images_dir: Path | None, reports_dir: Path | None) -> PresetTable:
    meta_csv = next((source / n for n in ("mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz")
                     if (source / n).exists()), source / "mimic-cxr-2.0.0-metadata.csv")
    table = read_csv(meta_csv)
    rel = [f"files/p{s[:2]}/p{s}/s{st}" for s, st in zip(table["subject_id"], table["study_id"], strict=True)]
    table.insert(0, "image_file", [f"{r}/{d}.jpg" for r, d in zip(rel, table["dicom_id"], strict=True)])
    reports_root = reports_dir or source / "mimic-cxr-reports"
    stats = TextStats()
    sections = [_read_report(reports_root / f"{r}.txt", stats) for r in rel]
    table["findings"] = [f for f, _ in sections]
    table["impression"] = [i for _, i in sections]
    table = table.drop(columns=[c for c in ("StudyDate", "StudyTime") if c in table.columns])
    table.attrs["report_files"] = stats.to_dict()
    return PresetTable("mimic_cxr_jpg", table, images_dir or source, "image_file", ("findings", "impression"),
                       "dicom_id")


Loader = Callable[[Path, "Path | None", "Path | None"], PresetTable]
PRESETS: dict[str, Loader] = {"covid_chestxray": _covid, "iu_xray": _iu, "openi": _openi, "mimic_cxr_jpg": _mimic}


def _csv_header(path: Path) -> set[str]:
    try:
        found = read_csv_text(path, limit=1 << 16)
        return set(pd.read_csv(io.StringIO(found.text), sep=found.delimiter, nrows=0).columns)
    except (OSError, EOFError, ValueError, pd.errors.EmptyDataError):
        return set()


def detect_preset(source: Path) -> str | None:
    """The preset whose files ``source`` (a folder or a CSV) has, or None."""
    if source.is_dir():
        if (source / "indiana_reports.csv").exists() and (source / "indiana_projections.csv").exists():
            return "openi"
        if any((source / n).exists() for n in ("mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz")):
            return "mimic_cxr_jpg"
        csv = source / "reports.csv"
    else:
        csv = source
    header = _csv_header(csv) if csv.is_file() else set()
    if {"image_id", "image_file", "findings", "impression", "projection", "mesh"} <= header:
        return "iu_xray"
    if {"image_id", "image_file", "findings", "impression", "labels"} <= header and (
            not source.is_dir() or (source / "images").is_dir()):
        return "covid_chestxray"
    return None


def load_preset(name: str, source: Path, images_dir: Path | None = None,
                reports_dir: Path | None = None) -> PresetTable:
    """Read ``source`` with preset ``name``; unknown names and missing files are CorpusErrors."""
    if name not in PRESETS:
        raise CorpusError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    try:
        return PRESETS[name](source, images_dir, reports_dir)
    except KeyError as exc:
        raise CorpusError(f"{source} does not have the {name} layout: column {exc} is missing") from None

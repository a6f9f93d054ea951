"""Read a corpus (CSV manifest, folder of images, or a preset layout) into items, checking it before any work.

Every cell is kept as text. Columns whose names look like patient identifiers (patient*, subject*, birth*, mrn,
accession*, name, ...) are dropped unless named in ``keep_cols``. DICOM headers are never read for metadata.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cxr_explorer.index.items import Item, ItemTable
from cxr_explorer.index.presets import CorpusError, PresetTable, detect_preset, load_preset, read_csv
from cxr_explorer.index.textfiles import TextStats, read_report_file
from cxr_explorer.retrieval.bundle.store.parts import BASE_COLUMNS
from cxr_explorer.retrieval.inputs.images import sniff_format
from cxr_explorer.retrieval.inputs.text import join_sections

__all__ = ["Corpus", "CorpusError", "CorpusOptions", "Item", "read_corpus"]
log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image_path", "path", "image_file", "filename", "file", "image", "img_path", "filepath",
                 "file_path", "dicom_path", "jpg_path", "png_path")
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
RESERVED = BASE_COLUMNS  # the bundle's own columns: a corpus column of that name is kept as corpus_<name>
_PHI_PARTS = re.compile(r"patient|subject|birth|accession|mrn|ssn|social_security")
_PHI_NAMES = frozenset({"name", "dob", "address", "phone", "email", "first_name", "last_name", "surname",
                        "given_name", "family_name", "telephone", "zip", "postcode"})


@dataclass(frozen=True)
class CorpusOptions:
    """How to read the corpus; None means auto-detect."""

    image_col: str | None = None
    text_cols: tuple[str, ...] | None = None
    id_col: str | None = None
    preset: str = "auto"  # auto | none | a name in index.presets.PRESETS
    images_dir: Path | None = None
    reports_dir: Path | None = None
    hash_ids: bool = False
    keep_cols: tuple[str, ...] = ()


@dataclass
class Corpus:
    """The items to index (in corpus order) and the rows rejected while reading (duplicates, no path)."""

    source: str
    kind: str
    items: ItemTable  # a Sequence[Item], held as Arrow columns (index.items)
    skipped: list[dict[str, str]]
    columns: dict[str, Any]


def looks_identifying(column: str) -> bool:
    """True for column names that usually hold patient identifiers."""
    norm = re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")
    return bool(_PHI_PARTS.search(norm)) or norm in _PHI_NAMES


def make_id(path: str, hash_ids: bool) -> str:
    """A stable id from a corpus path: the normalised path, or ``h`` + 16 hex of its SHA-256."""
    norm = posixpath.normpath(path.replace("\\", "/"))
    return "h" + hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16] if hash_ids else norm


def _pick_image_col(table: pd.DataFrame, wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in table.columns:
            raise CorpusError(f"no column {wanted!r} for --image-col; columns are: {', '.join(table.columns)}")
        return wanted
    lower = {c.lower(): c for c in table.columns}
    found = next((lower[c] for c in IMAGE_COLUMNS if c in lower), None)
    if found is None:
        raise CorpusError(f"cannot tell which column holds the image paths (looked for {', '.join(IMAGE_COLUMNS)}); "
                          f"columns are: {', '.join(table.columns)}; pass --image-col")
    return found


def _pick_text_cols(table: pd.DataFrame, wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    if wanted is not None:
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            raise CorpusError(f"no column {missing[0]!r} for --text-col; columns are: {', '.join(table.columns)}")
        return wanted
    lower = {c.lower(): c for c in table.columns}
    for group in (("report",), ("text",), ("findings", "impression"), ("findings",), ("impression",),
                  ("report_text",)):
        if all(g in lower for g in group):
            return tuple(lower[g] for g in group)
    log.warning("no report column found (report, text, findings/impression): images are indexed without reports")
    return ()


def _metadata_cols(table: pd.DataFrame, used: set[str], keep: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(kept, dropped) metadata columns; dropped ones look like patient identifiers."""
    missing = [c for c in keep if c not in table.columns]
    if missing:
        raise CorpusError(f"no column {missing[0]!r} for --keep-col; columns are: {', '.join(table.columns)}")
    rest = [c for c in table.columns if c not in used]
    dropped = [c for c in rest if looks_identifying(c) and c not in keep]
    if dropped:
        log.warning("not storing columns that may identify patients: %s (use --keep-col to keep one)",
                    ", ".join(dropped))
    return [c for c in rest if c not in dropped], dropped


def _table_items(pt: PresetTable, opts: CorpusOptions, source: Path) -> Corpus:
    """Items from a table: one row per image; duplicates and rows without a path or id are skipped."""
    table = pt.table
    image_col = _pick_image_col(table, opts.image_col or (pt.image_col if pt.name != "csv" else None))
    text_cols = _pick_text_cols(table, opts.text_cols or (pt.text_cols if pt.name != "csv" else None))
    id_col = opts.id_col or pt.id_col
    if id_col is not None and id_col not in table.columns:
        raise CorpusError(f"no column {id_col!r} for --id-col; columns are: {', '.join(table.columns)}")
    meta_cols, dropped = _metadata_cols(table, {image_col, *text_cols, *([id_col] if id_col else [])},
                                        opts.keep_cols)
    skipped: list[dict[str, str]] = []
    first: dict[str, int] = {}
    kept: list[int] = []
    ids: list[str] = []
    paths: list[str] = []
    id_cells = table[id_col].tolist() if id_col else None
    for row, cell in enumerate(table[image_col].tolist()):
        line = row + 2
        path = str(cell).strip()
        item_id = str(id_cells[row]).strip() if id_cells is not None else (make_id(path, opts.hash_ids) if path
                                                                             else "")
        if not path or not item_id:
            what = "image path" if not path else "id"
            skipped.append({"id": item_id, "path": path, "reason": f"no-{what.split()[-1]}",
                            "detail": f"row {line} has an empty {what}"})
            continue
        if item_id in first:
            skipped.append({"id": item_id, "path": path, "reason": "duplicate",
                            "detail": f"row {line} repeats the id of row {first[item_id]}"})
            continue
        first[item_id] = line
        kept.append(row)
        ids.append(item_id)
        paths.append(path)
    del first
    if not kept:
        raise CorpusError(f"corpus {source} has no usable rows (every row lacks an image path or id)")
    items = _listing(table, kept, ids, paths, text_cols, meta_cols, pt.base_dir.absolute())
    columns: dict[str, Any] = {"image_col": image_col, "text_cols": list(text_cols), "id_col": id_col,
                               "preset": pt.name, "metadata_cols": meta_cols, "dropped_cols": dropped}
    columns |= {key: table.attrs[key] for key in ("csv", "report_files") if key in table.attrs}
    return Corpus(str(source.absolute()), pt.name, items, skipped, columns)


def _listing(table: pd.DataFrame, kept: list[int], ids: list[str], paths: list[str], text_cols: tuple[str, ...],
             meta_cols: list[str], base_dir: Path) -> ItemTable:
    """The kept rows [K] of ``table`` as an :class:`ItemTable` (paths resolved, reports joined, metadata as str)."""
    abspaths = [os.path.normpath(p if os.path.isabs(p) else os.path.join(base_dir, p)) for p in paths]
    texts = [table[c].to_numpy()[kept] for c in text_cols]
    reports = [join_sections(*cells) for cells in zip(*texts, strict=True)] if texts else [""] * len(kept)
    meta = {(f"corpus_{c}" if c in RESERVED else c): [str(v) for v in table[c].to_numpy()[kept]] for c in meta_cols}
    return ItemTable.from_columns(ids, paths, abspaths, reports, meta)


def _is_image_file(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as fh:
            return sniff_format(fh.read(132)) is not None
    except OSError:
        return False


def _walk(source: Path, skipped: list[dict[str, str]]) -> Iterator[Path]:
    """Files under ``source``, sorted, hidden entries skipped. Linked folders are followed, each real folder once: a
    second way into a folder already walked (a link loop, two links to one folder) is listed in ``skipped``."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            rel = Path(dirpath).relative_to(source).as_posix()
            skipped.append({"id": "", "path": rel, "reason": "linked-folder-seen",
                            "detail": f"folder {rel} is a link to a folder already indexed; its files are indexed "
                                      "once, from there"})
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(f for f in filenames if not f.startswith(".")):
            yield Path(dirpath) / name


def _folder_items(source: Path, opts: CorpusOptions) -> Corpus:
    """Every image under ``source`` (recursive, sorted, hidden entries skipped); ``<stem>.txt`` is its report."""
    items = []
    skipped: list[dict[str, str]] = []
    stats = TextStats()
    for path in _walk(source, skipped):
        if not _is_image_file(path):
            continue
        rel = path.relative_to(source).as_posix()
        sidecar = path.with_suffix(".txt") if path.suffix else None
        report = read_report_file(sidecar, stats) if sidecar and sidecar.is_file() else ""
        items.append(Item(make_id(rel, opts.hash_ids), rel, str(path.absolute()), join_sections(report)))
    if not items:
        raise CorpusError(f"no images found under {source} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} "
                          "and extensionless PNG/JPEG/DICOM files)")
    columns: dict[str, Any] = {"image_col": None, "text_cols": ["<stem>.txt"], "id_col": None, "preset": None,
                               "metadata_cols": [], "dropped_cols": [], "report_files": stats.to_dict()}
    return Corpus(str(source.absolute()), "folder", ItemTable.from_items(items), skipped, columns)


def read_corpus(source: str | os.PathLike[str], opts: CorpusOptions | None = None) -> Corpus:
    """Read a CSV manifest, a preset layout or a folder of images; CorpusError for a mis-specified corpus."""
    opts = opts or CorpusOptions()
    src = Path(source)
    if not src.exists():
        raise CorpusError(f"corpus {src} does not exist")
    preset = detect_preset(src) if opts.preset == "auto" else None if opts.preset == "none" else opts.preset
    if preset is not None:
        return _table_items(load_preset(preset, src, opts.images_dir, opts.reports_dir), opts, src)
    if src.is_dir():
        given = [o for o, v in (("--image-col", opts.image_col), ("--text-col", opts.text_cols),
                                ("--id-col", opts.id_col)) if v]
        if given:
            raise CorpusError(f"{given[0]} needs a CSV corpus, but {src} is a folder of images")
        return _folder_items(src, opts)
    base = opts.images_dir or src.parent
    return _table_items(PresetTable("csv", read_csv(src), base, "", (), None), opts, src)

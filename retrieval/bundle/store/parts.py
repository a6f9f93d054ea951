"""The data files of a part: a chunk, a staged or an installed bundle version (see :mod:`retrieval.bundle.store`).

A *part* is a set of indexed items with their vectors, patches, thumbnails, report and sentence vectors, plus the
items it skipped. A chunk of an unfinished build, a shard bundle and a finished bundle are all stored as the same
data files, so a bundle is finalised (or merged) by streaming parts into a new folder. Rows inside a part are local.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cxr_explorer.retrieval.bundle.store.names import (
    COVERED,
    IMAGE_EMB,
    INDEX_FILES,
    METADATA,
    PART_STATS,
    PATCH_SCALES,
    PATCHES,
    PATCHES_INT8,
    REPORT_EMB,
    REPORT_ROWS,
    SENTENCE_EMB,
    SENTENCES,
    SKIPPED_CSV,
    SKIPPED_JSON,
    THUMBS,
    THUMBS_INDEX,
)
from cxr_explorer.retrieval.bundle.store.patch_store import Int8Patches, is_int8, write_int8
from cxr_explorer.retrieval.bundle.store.tables import SENTENCES_SCHEMA, metadata_schema, union_columns, write_frames

BASE_COLUMNS = ("id", "path", "image_abspath", "report", "sentences")
SKIPPED_FIELDS = ("id", "path", "reason", "detail")
_BLOCK = 1024  # items per patch block when streaming
_ROWS = 65_536  # vector rows per block when streaming vectors (32 MiB at D = 128)


class ThumbStore(Sequence[bytes]):
    """Read-only JPEG thumbnails stored back to back in one file; ``offsets`` is [N, 2] int64 (offset, length)."""

    def __init__(self, data_path: Path, offsets: np.ndarray,
                 check: Callable[[int, int], None] | None = None) -> None:
        """``check(start, stop)``, when given, verifies a byte range of the file before it is returned."""
        self.data_path = data_path
        self.offsets = offsets
        self.check = check

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def __getitem__(self, row):  # type: ignore[override]
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        offset, length = (int(v) for v in self.offsets[row])
        if self.check is not None:
            self.check(offset, offset + length)
        with open(self.data_path, "rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def __iter__(self) -> Iterator[bytes]:
        with open(self.data_path, "rb") as fh:
            for offset, length in self.offsets:
                if self.check is not None:
                    self.check(int(offset), int(offset) + int(length))
                fh.seek(int(offset))
                yield fh.read(int(length))


@dataclass(kw_only=True)
class Part:
    """n items, r reports and s sentences; ``report_rows``/``sentences.row`` index this part's items.

    metadata [n] (id, path, image_abspath, report, sentences, + metadata columns as str); image_emb [n, D] float32;
    patches [n, h, w, D] float16 (may be a memmap); thumbnails n JPEG bytes; report_emb [r, D] float32;
    report_rows [r] int64; sentence_emb [s, D] float32; sentences [s] (row, text); skipped: dicts of SKIPPED_FIELDS;
    covered: ids of every corpus item the part accounts for (indexed and skipped); stats: counters of the job.
    Built by keyword only.
    """

    metadata: pd.DataFrame
    image_emb: np.ndarray
    patches: np.ndarray | Int8Patches
    thumbnails: Sequence[bytes]
    report_emb: np.ndarray
    report_rows: np.ndarray
    sentence_emb: np.ndarray
    sentences: pd.DataFrame
    skipped: list[dict[str, str]] = field(default_factory=list)
    covered: list[str] | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of indexed items."""
        return len(self.metadata)

    def covered_ids(self) -> list[str]:
        """Every id this part accounts for: its items, then its skipped ones."""
        if self.covered is not None:
            return list(self.covered)
        return [*self.metadata["id"].astype(str).tolist(), *(str(s.get("id", "")) for s in self.skipped)]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a small file via a temporary name and ``os.replace``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented UTF-8 JSON."""
    _atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    """Parse a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr))


def _write_rows(path: Path, arrays: Sequence[np.ndarray], width: int, dtype: type) -> None:
    """Stream ``[n_i, width]`` arrays (in memory or memory-mapped) into one ``[sum n_i, width]`` .npy, ``_ROWS`` rows
    at a time: no concatenated copy of the corpus's vectors is made."""
    arrays = [a if isinstance(a, np.ndarray) else np.asarray(a, dtype) for a in arrays]  # memmaps stay memmaps
    n = sum(int(a.shape[0]) for a in arrays)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (n, width)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for a in arrays:
            for start in range(0, int(a.shape[0]), _ROWS):
                block: np.ndarray = np.ascontiguousarray(read_rows(a, start, _ROWS), dtype=dtype).reshape(-1, width)
                fh.write(block.tobytes())


def write_parts(folder: Path, parts: Sequence[Part], grid_shape: tuple[int, int], dim: int,
                patch_store: str = "fp16") -> dict[str, int]:
    """Concatenate ``parts`` into the data files of ``folder`` (patches and thumbnails streamed); returns counts.

    ``patch_store``: ``fp16`` (patches.npy) or ``int8`` (codes + per-patch scales,
    :mod:`retrieval.bundle.store.patch_store`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [p.count for p in parts])
    n = int(offsets[-1])
    _write_tables(folder, parts, offsets)
    _write_rows(folder / IMAGE_EMB, [p.image_emb for p in parts], dim, np.float32)
    _write_rows(folder / REPORT_EMB, [p.report_emb for p in parts], dim, np.float32)
    rows = [np.asarray(p.report_rows, np.int64) + off for p, off in zip(parts, offsets, strict=False)]
    _save_npy(folder / REPORT_ROWS, np.concatenate(rows) if rows else np.zeros(0, np.int64))
    _write_rows(folder / SENTENCE_EMB, [p.sentence_emb for p in parts], dim, np.float32)
    if patch_store == "int8":
        write_int8(folder, (read_rows(p.patches, start, _BLOCK) for p in parts for start in range(0, p.count,
                                                                                                   _BLOCK)),
                   (n, *grid_shape, dim))
    else:
        _write_patches(folder / PATCHES, parts, (n, *grid_shape, dim))
    _write_thumbs(folder, parts)
    skipped = [s for p in parts for s in p.skipped]
    write_json(folder / SKIPPED_JSON, skipped)
    write_json(folder / COVERED, [i for p in parts for i in p.covered_ids()])
    if any(p.stats for p in parts):
        write_json(folder / PART_STATS, sum_stats([p.stats for p in parts]))
    n_sent = sum(len(p.sentences) for p in parts)
    return {"items": n, "reports": sum(len(p.report_rows) for p in parts), "sentences": n_sent,
            "skipped": len(skipped)}


def _write_tables(folder: Path, parts: Sequence[Part], offsets: np.ndarray) -> None:
    """metadata.parquet (all columns as str except ``sentences``) and sentences.parquet with global rows, one row
    group per part (:mod:`retrieval.bundle.store.tables`): no concatenated copy of the corpus's rows."""
    frames = [p.metadata for p in parts if len(p.metadata)]
    columns = union_columns(frames, BASE_COLUMNS)
    write_frames(folder / METADATA, (_aligned(f, columns) for f in frames), metadata_schema(columns))
    sentences = (pd.DataFrame({"row": p.sentences["row"].to_numpy(np.int64) + off,
                               "text": p.sentences["text"].astype(str)})
                 for p, off in zip(parts, offsets, strict=False) if len(p.sentences))
    write_frames(folder / SENTENCES, sentences, SENTENCES_SCHEMA)


def _aligned(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` normalised (:func:`normalise_metadata`) with ``columns`` in order; a column it lacks is ""."""
    meta = normalise_metadata(frame)
    for col in columns:
        if col not in meta.columns:
            meta[col] = ""
    return meta[columns]


def normalise_metadata(meta: pd.DataFrame) -> pd.DataFrame:
    """Base columns first; every column but ``sentences`` as str (missing -> ""); ``sentences`` as lists of str."""
    meta = meta.copy()
    for col in BASE_COLUMNS:
        if col not in meta.columns:
            meta[col] = [[] for _ in range(len(meta))] if col == "sentences" else ""
    cols = list(BASE_COLUMNS) + [c for c in meta.columns if c not in BASE_COLUMNS]
    meta = meta[cols]
    for col in cols:
        if col == "sentences":
            meta[col] = [[str(s) for s in v] if v is not None else [] for v in meta[col]]
        else:
            meta[col] = meta[col].map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v))
    return meta.reset_index(drop=True)


def _write_patches(path: Path, parts: Sequence[Part], shape: tuple[int, ...]) -> None:
    """Stream each part's patches into one [N, h, w, D] float16 .npy file, block by block.

    Plain reads and writes, no memory maps: mapped pages count in the process's RSS until unmapped, so mapping every
    chunk and the output made finalisation's RSS grow by twice the patch bytes of the corpus (1.1 GB at 10k items).
    """
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False, "shape": shape}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for p in parts:
            for start in range(0, p.count, _BLOCK):
                fh.write(np.ascontiguousarray(read_rows(p.patches, start, _BLOCK), dtype=np.float16).tobytes())


def read_rows(patches: np.ndarray | Int8Patches, start: int, size: int) -> np.ndarray:
    """Rows ``start:start + size`` of an ``[n, ...]`` array (patches, vectors); a memory-mapped .npy is read with
    pread, so its pages are never mapped into the process (they would count in its RSS until unmapped)."""
    row = int(np.prod(patches.shape[1:])) * patches.itemsize
    if isinstance(patches, np.memmap) and patches.filename and patches.flags.c_contiguous \
            and os.path.getsize(patches.filename) == patches.offset + len(patches) * row:  # the whole file, no view
        n = min(size, len(patches) - start)
        with open(patches.filename, "rb") as fh:
            data = os.pread(fh.fileno(), n * row, patches.offset + start * row)
        return np.frombuffer(data, patches.dtype).reshape(n, *patches.shape[1:])
    return np.asarray(patches[start:start + size])


def _write_thumbs(folder: Path, parts: Sequence[Part]) -> None:
    """Concatenate JPEG bytes into thumbs.bin with a [N, 2] (offset, length) index."""
    index: list[tuple[int, int]] = []
    offset = 0
    with open(folder / THUMBS, "wb") as fh:
        for p in parts:
            for data in p.thumbnails:
                fh.write(data)
                index.append((offset, len(data)))
                offset += len(data)
    _save_npy(folder / THUMBS_INDEX, np.asarray(index, np.int64).reshape(-1, 2))


def read_part(folder: Path, mmap: bool = True) -> Part:
    """Read the data files of a chunk or a bundle as a :class:`Part` (patches and vectors memory-mapped unless
    ``mmap`` is False: finalisation streams them, so gathering the chunks does not hold the corpus's vectors)."""
    mode: Literal["r"] | None = "r" if mmap else None
    meta = pd.read_parquet(folder / METADATA)
    meta["sentences"] = [list(v) if v is not None else [] for v in meta["sentences"]]
    skipped = read_json(folder / SKIPPED_JSON) if (folder / SKIPPED_JSON).exists() else []
    covered = read_json(folder / COVERED) if (folder / COVERED).exists() else None
    stats = read_json(folder / PART_STATS) if (folder / PART_STATS).exists() else {}
    return Part(
        metadata=meta,
        image_emb=np.load(folder / IMAGE_EMB, mmap_mode=mode),
        patches=Int8Patches.load(folder) if is_int8(folder) else np.load(folder / PATCHES, mmap_mode=mode),
        thumbnails=ThumbStore(folder / THUMBS, np.load(folder / THUMBS_INDEX)),
        report_emb=np.load(folder / REPORT_EMB, mmap_mode=mode),
        report_rows=np.load(folder / REPORT_ROWS),
        sentence_emb=np.load(folder / SENTENCE_EMB, mmap_mode=mode),
        sentences=pd.read_parquet(folder / SENTENCES),
        skipped=skipped,
        covered=covered,
        stats=stats,
    )


def sum_stats(stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add numeric counters key by key."""
    out: dict[str, Any] = {}
    for s in stats:
        for k, v in s.items():
            out[k] = out.get(k, 0) + v
    return out


def write_skipped_csv(path: Path, skipped: list[dict[str, str]]) -> None:
    """skipped.csv with columns id, path, reason, detail."""
    frame = pd.DataFrame([{k: str(s.get(k, "")) for k in SKIPPED_FIELDS} for s in skipped], columns=SKIPPED_FIELDS)
    frame.to_csv(path, index=False)


def file_checksums(folder: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{name: {bytes, sha256}} for each file in ``names``."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        digest = hashlib.sha256()
        with open(folder / name, "rb") as fh:
            while block := fh.read(1 << 23):
                digest.update(block)
        out[name] = {"bytes": (folder / name).stat().st_size, "sha256": digest.hexdigest()}
    return out


def data_files(folder: Path) -> list[str]:
    """Every data file of a staged version in ``folder`` (the parts' files and the FAISS indexes); the derived files
    (:data:`retrieval.bundle.writer.DERIVED`) and the manifest are not among them."""
    patches = [PATCHES_INT8, PATCH_SCALES] if is_int8(folder) else [PATCHES]
    names = [METADATA, SENTENCES, IMAGE_EMB, REPORT_EMB, REPORT_ROWS, SENTENCE_EMB, *patches, THUMBS, THUMBS_INDEX,
             SKIPPED_JSON, COVERED, SKIPPED_CSV, *INDEX_FILES.values()]
    return names + ([PART_STATS] if (folder / PART_STATS).exists() else [])

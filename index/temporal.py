"""The temporal stage of a BioViL-T build: each indexed image with a prior gets the embedding of the current image
fused with its prior, stored beside the single-image one (the temporal section, see docs/bundle-format.md).

It runs inside the finalisation of a build, on the staged version before it is installed (a derived-file
:data:`retrieval.bundle.writer.Step`), so an installed version is never modified. Work is committed in chunk files in
the build area (written atomically); a rerun after a crash embeds only the pairs no chunk holds, so each pair is
embedded exactly once, and pairs of the version being appended to are reused. Problems are recorded per item with a
reason (``missing``, ``self``, ``bad-order``, ``unreadable``), never fatal. Images without a prior keep BioViL-T's
no-prior path: their single-image embedding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxr_explorer.index.priors import STATUS_MEANINGS, PriorLink, PriorOptions
from cxr_explorer.index.progress import Progress
from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store.atomic import writing
from cxr_explorer.retrieval.bundle.store.temporal import TemporalRecords, section_files
from cxr_explorer.retrieval.bundle.writer import Derived
from cxr_explorer.retrieval.inputs.images import ImageLoadError, load_image
from cxr_explorer.retrieval.models import VLModel
from cxr_explorer.retrieval.temporal.interval import has_temporal_path

__all__ = ["TemporalSummary", "run_temporal"]
log = logging.getLogger(__name__)
_FIELDS = ("id", "prior_id", "status", "detail")
CHUNK_PAIRS = 64  # pairs per committed temporal chunk


@dataclass(frozen=True)
class TemporalSummary:
    """What the stage recorded: counts by status, pairs embedded in this run and their rate (pairs/s)."""

    by_status: dict[str, int]
    embedded_now: int
    pairs_per_s: float | None
    embedded: bool

    def line(self) -> str:
        """The stage's summary: counts by status, then one line per status saying what it means."""
        counts = ", ".join(f"{k}: {v}" for k, v in self.by_status.items())
        rate = f", {self.pairs_per_s:.2f} pairs/s" if self.pairs_per_s else ""
        what = "temporal embeddings" if self.embedded else "priors recorded (this model has no prior-image path)"
        return f"{what}: {counts} (embedded {self.embedded_now} pairs in this run{rate})" + "".join(
            f"\n  {k}: {STATUS_MEANINGS.get(k, '')}" for k in self.by_status)


def _records_of(link: PriorLink, status: str | None = None, detail: str | None = None) -> dict[str, str]:
    return {"id": link.id, "prior_id": link.prior_id or "", "status": status or link.status,
            "detail": link.detail if detail is None else detail}


def _initial(ids: list[str], skipped_items: list[dict[str, str]], links: dict[str, PriorLink]
             ) -> list[dict[str, str]]:
    """One record per indexed image (``ids`` in bundle order); a paired prior that the build skipped is
    ``unreadable`` with its reason."""
    indexed = set(ids)
    skipped = {str(s.get("id", "")): s for s in skipped_items}
    out = []
    for item_id in ids:
        link = links.get(item_id, PriorLink(item_id, "no-prior", None, "not in the corpus of this run"))
        if link.status == "paired" and link.prior_id not in indexed:
            s = skipped.get(str(link.prior_id), {})
            detail = f"prior {link.prior_id!r} was skipped by the build ({s.get('reason', 'not indexed')}: " \
                     f"{s.get('detail', '')})"
            out.append(_records_of(link, "unreadable", detail))
        else:
            out.append(_records_of(link))
    return out


def _load(path: str, model: VLModel) -> torch.Tensor:
    return model.preprocess(load_image(path).image).unsqueeze(0)


def _chunk_files(folder: Path) -> list[Path]:
    """Committed chunks, in commit order (a temporary file left by a crash mid-write, ``.<name>.npz.*.tmp``, is not
    one; an older run's ``.tmp.npz`` neither)."""
    return sorted(p for p in folder.glob("[!.]*.npz") if not p.name.endswith(".tmp.npz")) if folder.is_dir() else []


def _read_done(base: Bundle | None, chunks: Path) -> tuple[dict[str, dict[str, str]], dict[str, np.ndarray]]:
    """Records and embeddings already made: the section of the version appended to, then every committed chunk."""
    records: dict[str, dict[str, str]] = {}
    vectors: dict[str, np.ndarray] = {}
    section = TemporalRecords.open(base.folder) if base is not None else None
    if section is not None:
        table = section.table
        for rec, row in zip(table.to_dict("records"), table["emb_row"], strict=True):
            if rec["status"] == "paired" and int(row) >= 0:
                records[rec["id"]] = {k: str(rec[k]) for k in _FIELDS}
                vectors[rec["id"]] = np.asarray(section.embeddings[int(row)], np.float32)
    for path in _chunk_files(chunks):
        with np.load(path, allow_pickle=False) as z:
            for i, item_id in enumerate(z["id"].tolist()):
                rec = {k: str(z[k][i]) for k in _FIELDS}
                records[item_id] = rec
                if rec["status"] == "paired":
                    vectors[item_id] = z["emb"][i]
    return records, vectors


def _commit_chunk(folder: Path, number: int, recs: list[dict[str, str]], emb: list[np.ndarray], dim: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {k: np.array([r[k] for r in recs], dtype=str) for k in _FIELDS}
    arrays["emb"] = np.stack(emb).astype(np.float32) if emb else np.zeros((len(recs), dim), np.float32)
    with writing(folder / f"{number:06d}.npz") as fh:
        np.savez(fh, **arrays)


def _embed_pending(folder: Path, model: VLModel, paths: dict[str, str], todo: list[dict[str, str]],
                   chunk_size: int, progress: Progress) -> int:
    """Embed ``todo`` pairs (current, prior) in chunks committed to ``folder``, counting each in ``progress``;
    unreadable images become ``unreadable`` records. ``paths``: id -> image path."""
    done = _chunk_files(folder)
    start = int(done[-1].name.split(".")[0]) + 1 if done else 0
    embedded = 0
    for n, lo in enumerate(range(0, len(todo), chunk_size)):
        recs, emb = [], []
        for rec in todo[lo:lo + chunk_size]:
            try:
                cur = _load(paths[rec["id"]], model)
            except ImageLoadError as exc:
                recs.append({**rec, "status": "unreadable", "detail": f"current image: {exc.detail}"})
                progress.update(skipped=1)
                continue
            try:
                prior = _load(paths[rec["prior_id"]], model)
            except ImageLoadError as exc:
                recs.append({**rec, "status": "unreadable", "detail": f"prior image: {exc.detail}"})
                progress.update(skipped=1)
                continue
            out = model.encode_images(cur, prior)
            recs.append(rec)
            emb.append(out.global_emb[0].numpy())
            embedded += 1
            progress.update(indexed=1)
        ordered = [r for r in recs if r["status"] == "paired"] + [r for r in recs if r["status"] != "paired"]
        _commit_chunk(folder, start + n, ordered, emb, model.spec.joint_dim)
    return embedded


def _write_section(staging: Path, rows: list[dict[str, str]], vectors: dict[str, np.ndarray], dim: int,
                   prior: PriorOptions, embedded: bool) -> tuple[dict[str, int], Derived]:
    """Write the temporal section into the staged version; (counts by status, its manifest entry and files)."""
    emb_row: list[int] = []
    mat: list[np.ndarray] = []
    for r in rows:
        if r["status"] == "paired" and r["id"] in vectors:
            emb_row.append(len(mat))
            mat.append(vectors[r["id"]])
        else:
            emb_row.append(-1)
    table = pd.DataFrame(rows, columns=list(_FIELDS))
    table["emb_row"] = np.array(emb_row, np.int64)
    pairs_path, emb_path = section_files(staging)
    pairs_path.parent.mkdir(exist_ok=True)
    with writing(pairs_path) as fh:
        table.to_parquet(fh, index=False)
    with writing(emb_path) as fh:
        np.save(fh, np.stack(mat).astype(np.float32) if mat else np.zeros((0, dim), np.float32))
    counts = table["status"].value_counts().to_dict()
    by_status = {k: int(counts[k]) for k in sorted(counts)}
    files = [str(p.relative_to(staging)) for p in (pairs_path, emb_path)]
    entry = {"priors": prior.describe(), "embedded": embedded, "files": files, "by_status": by_status,
             "paired_embedded": len(mat), "embedding": "global embedding of the current image fused with its prior "
             "(BioViL-T MultiImageEncoder), L2-normalised, float32"}
    return by_status, Derived({"temporal": entry}, files)


def run_temporal(staging: Path, model: VLModel, links: dict[str, PriorLink], prior: PriorOptions, chunks: Path,
                 base: Bundle | None = None, chunk_size: int | None = None, progress: str = "none",
                 log_every_s: float = 30.0) -> tuple[TemporalSummary, Derived]:
    """Record every indexed image of the staged version's prior and, for BioViL-T, embed each (current, prior) pair
    exactly once (pairs of ``base``, the version appended to, and of committed ``chunks`` are reused), reporting
    pairs done with rate and ETA in ``progress`` mode (auto, bar, log, none); returns the summary and the section's
    manifest entry and files."""
    part = store.read_part(staging)
    ids = part.metadata["id"].astype(str).tolist()
    rows0 = _initial(ids, part.skipped, links)
    embedded = has_temporal_path(model)
    done_records, _ = _read_done(base, chunks)
    todo = [r for r in rows0 if r["status"] == "paired" and r["id"] not in done_records] if embedded else []
    t0 = time.perf_counter()
    paths = dict(zip(ids, part.metadata["image_abspath"].astype(str), strict=True))
    now = 0
    if todo:
        if progress != "none":
            log.info("temporal stage: embedding %d (current, prior) pairs", len(todo))
        bar = Progress(len(todo), progress, log_every_s, what="temporal pairs", unit="pair")
        now = _embed_pending(chunks, model, paths, todo, chunk_size or CHUNK_PAIRS, bar)
        bar.close()
    rate = now / (time.perf_counter() - t0) if now else None
    records, vectors = _read_done(base, chunks)
    rows = [records.get(r["id"], r) for r in rows0]
    by_status, derived = _write_section(staging, rows, vectors, model.spec.joint_dim, prior, embedded)
    return TemporalSummary(by_status, now, rate, embedded), derived

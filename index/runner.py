"""The offline index job: corpus -> decode workers -> image/text embedding -> atomic chunks -> finished bundle.

``run_build(BuildConfig(...))`` checks the corpus and the output folder before any work, resumes from committed
chunks, skips (and records) every bad item, and finalises. Rerunning the same command after a crash or ``kill -9``
at any moment finishes the job with every item exactly once.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from cxr_explorer.index.build_state import check_state
from cxr_explorer.index.corpus import Corpus, CorpusOptions, Item, read_corpus
from cxr_explorer.index.decode import Decoded, DecodePool, DecodeTask, Failed
from cxr_explorer.index.embed import ChunkBuffer, Plans, Timers, embed_images, prewarm_texts, set_threads
from cxr_explorer.index.finalise import finalise_build
from cxr_explorer.index.items import ItemTable
from cxr_explorer.index.precision import build_precision
from cxr_explorer.index.priors import PriorLink, PriorOptions, find_priors
from cxr_explorer.index.progress import Progress
from cxr_explorer.index.shards import shard_of
from cxr_explorer.index.temporal import TemporalSummary, run_temporal
from cxr_explorer.index.text_cache import TextCache, seeded_cache
from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.bundle.reader import Bundle, BundleError
from cxr_explorer.retrieval.bundle.store import names
from cxr_explorer.retrieval.bundle.writer import Derived, Step
from cxr_explorer.retrieval.inputs.text import CLEANING, LONG_REPORT_STRATEGY
from cxr_explorer.retrieval.models import VLModel, load_model
from cxr_explorer.retrieval.models.api import pick_device

__all__ = ["BuildConfig", "BuildSummary", "run_build"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``cxr-explorer build`` takes; None means choose for this machine."""

    corpus: Path
    out: Path
    model: str = "biovil"
    weights_dir: Path | None = None
    corpus_options: CorpusOptions = field(default_factory=CorpusOptions)
    device: str = "auto"
    precision: str = "auto"  # bf16 where the hardware has native bf16, else fp32 (index.precision)
    index_type: str = "auto"
    append: bool = False
    shard: tuple[int, int] | None = None
    workers: int | None = None
    threads: int | None = None
    batch_size: int | None = None
    text_batch: int = 64
    chunk_size: int = 1024
    limit: int | None = None
    progress: str = "auto"
    log_every_s: float = 30.0
    command: str = ""
    priors: PriorOptions | None = None  # pair images with their prior study (index/priors.py, index/temporal.py)
    label_sep: str | None = None  # multi-label separator of metadata cells (None: detect ";" or "|")
    patch_store: str | None = None  # fp16 or int8 (+ per-patch scale); None: the appended bundle's, else fp16


@dataclass
class BuildSummary:
    """What a run did; ``status`` is built, appended or complete (nothing left to do)."""

    out: Path
    status: str
    count: int
    indexed_now: int
    skipped_by_reason: dict[str, int]
    wall_s: float
    images_per_s: float | None
    temporal: TemporalSummary | None = None
    skipped_csv: Path | None = None

    def line(self) -> str:
        """The one-paragraph summary printed at the end."""
        skipped = sum(self.skipped_by_reason.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in self.skipped_by_reason.items())
        rate = f", {self.images_per_s:.1f} images/s" if self.images_per_s else ""
        return (f"{self.status}: {self.count} items in {self.out} (indexed {self.indexed_now} in this run{rate}, "
                f"{self.wall_s:.1f} s); skipped {skipped}" + (f" ({reasons})" if reasons else "") +
                (f"; see {self.skipped_csv}" if skipped and self.skipped_csv else "") +
                (f"\n{self.temporal.line()}" if self.temporal else ""))


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _select(cfg: BuildConfig, corpus: Corpus) -> tuple[ItemTable, list[dict[str, str]]]:
    """Items (and corpus-level skips) this run owns: its shard, at most ``limit``."""
    items, skips = corpus.items, corpus.skipped
    if cfg.shard is not None:
        i, n = cfg.shard
        items = items.where(shard_of(x, n) == i for x in items.ids())
        skips = [s for s in skips if shard_of(s.get("id") or s.get("path", ""), n) == i]  # each in one shard
    return (items[: cfg.limit] if cfg.limit is not None else items), skips


def _settings(cfg: BuildConfig, corpus: Corpus) -> dict[str, Any]:
    return {"command": cfg.command, "model": cfg.model, "precision": cfg.precision,
            "shard": list(cfg.shard) if cfg.shard else None, "corpus": corpus.source, "corpus_kind": corpus.kind,
            "columns": corpus.columns, "hash_ids": cfg.corpus_options.hash_ids, "index_type": cfg.index_type,
            "chunk_size": cfg.chunk_size, "limit": cfg.limit, "label_sep": cfg.label_sep,
            "text": {"cleaning": CLEANING, "long_report_strategy": LONG_REPORT_STRATEGY, "max_tokens": 512,
                     "sentence_splitter": "cxr_explorer.retrieval.inputs.text.split_sentences (radiology-aware)"}}


def _check_folder(cfg: BuildConfig, area: store.BuildArea, items: ItemTable) -> Bundle | None:
    """The existing bundle to append to (or None); BundleError when this command must not touch the folder."""
    out = cfg.out
    if store.is_legacy(out):
        Bundle.open(out)  # the one-line "format version 1 ... rebuild" error
    if not store.has_bundle(out):
        stray = [p.name for p in out.iterdir() if not store.is_own_entry(p.name)] if out.is_dir() else []
        if stray and area.state() is None:
            raise BundleError(f"{out} is not empty and is not a bundle (it holds {stray[0]}); use a new --out")
        return None
    if cfg.append:
        base = Bundle.open(out)
        if base.model_name != cfg.model:
            raise BundleError(f"cannot append to {out}: it was built with model {base.model_name!r}, this command "
                              f"asks for {cfg.model!r}; append with --model {base.model_name}, or build a new bundle "
                              "with another --out")
        if base.manifest.get("build", {}).get("precision", cfg.precision) != cfg.precision:
            raise BundleError(f"{out} was built with --precision {base.manifest['build']['precision']}; "
                              "append with the same precision")
        return base
    if area.chunks.committed():
        raise BundleError(f"an --append into {out} was interrupted; rerun that command with --append to finish it")
    base = Bundle.open(out)
    done = set(base.as_part().covered_ids())
    new = sum(1 for x in items.ids() if x not in done)
    if new:
        raise BundleError(f"{out} is a finished bundle and the corpus has {new} items it does not hold; pass --append "
                          "to add them, or use a new --out")
    return base


def _commit(buf: ChunkBuffer, chunks: store.ChunkStore, model: VLModel, cfg: BuildConfig, grid: tuple[int, int],
            timers: Timers, started: float, cache: TextCache, calls: tuple[int, int], planned: Plans) -> None:
    """Embed the chunk's texts and commit it; ``calls`` = the cache's (requested, encoded) when the chunk began,
    ``planned`` the reports already planned (they are not planned again)."""
    part, windowed = buf.to_part(model, grid, cfg.text_batch, timers, cache, planned)
    part.stats = {"items": buf.size, "indexed": part.count, "windowed_reports": windowed,
                  "text_requested": cache.stats.requested - calls[0], "text_encoded": cache.stats.encoded - calls[1],
                  "wall_s": time.perf_counter() - started, **{f"{k}_s": v for k, v in timers.to_dict().items()}}
    start = time.perf_counter()
    chunks.commit(part, grid, model.spec.joint_dim)
    log.debug("committed chunk of %d items (%.2f s to write)", buf.size, time.perf_counter() - start)


@dataclass
class _Batch:
    """Decoded images waiting for the next forward pass."""

    items: list[Item] = field(default_factory=list)
    decoded: list[Decoded] = field(default_factory=list)

    def flush_into(self, buf: ChunkBuffer, model: VLModel, timers: Timers, progress: Progress, rows: int) -> int:
        """Embed the batch into ``buf`` in a forward pass of ``rows`` images; returns the number embedded."""
        n = len(self.items)
        if n:
            emb, patches = embed_images(model, self.decoded, timers, rows)
            buf.add(self.items, self.decoded, emb, patches)
            progress.update(indexed=n)
            self.items, self.decoded = [], []
        return n


def _embed_all(cfg: BuildConfig, model: VLModel, chunks: store.ChunkStore, pending: Sequence[Item],
               grid: tuple[int, int], pool: DecodePool, batch_size: int, cache: TextCache) -> int:
    """Decode, embed and commit ``pending`` in chunks; returns the number of images indexed."""
    pp = model.preprocessing
    tasks = (DecodeTask(i.id, i.abspath, i.path, pp.resize, pp.crop) for i in pending)
    progress = Progress(len(pending), cfg.progress, cfg.log_every_s)
    buf, timers, batch, indexed = ChunkBuffer(), Timers(), _Batch(), 0
    started, calls = time.perf_counter(), (cache.stats.requested, cache.stats.encoded)
    results = pool.stream(tasks)  # the first decodes are queued now; the first chunk's texts embed meanwhile
    planned = prewarm_texts(model, [i.report for i in pending[:cfg.chunk_size]], cfg.text_batch, timers, cache)
    wait = time.perf_counter()
    for n, (item, (_, result)) in enumerate(zip(pending, results, strict=True)):
        if n == 0:
            timers.decode_startup += time.perf_counter() - wait
        else:
            timers.decode_wait += time.perf_counter() - wait
        if isinstance(result, Failed):
            buf.skip(item, result.reason, result.detail)
            progress.update(skipped=1)
        else:
            batch.items.append(item)
            batch.decoded.append(result)
        if len(batch.items) >= batch_size or buf.size + len(batch.items) >= cfg.chunk_size:
            indexed += batch.flush_into(buf, model, timers, progress, batch_size)
        if buf.size >= cfg.chunk_size:
            _commit(buf, chunks, model, cfg, grid, timers, started, cache, calls, planned)
            buf, timers, started, planned = ChunkBuffer(), Timers(), time.perf_counter(), {}
            calls = cache.stats.requested, cache.stats.encoded
        wait = time.perf_counter()
    indexed += batch.flush_into(buf, model, timers, progress, batch_size)
    if buf.size:
        _commit(buf, chunks, model, cfg, grid, timers, started, cache, calls, planned)
    progress.close()
    return indexed


def run_build(cfg: BuildConfig, model: VLModel | None = None) -> BuildSummary:
    """Build, resume or append; CorpusError/BundleError/BuildStateError/StoreError for problems found before any
    work (DiskSpaceError, resumable, when the disk fills up)."""
    t0 = time.perf_counter()
    device = model.device if model is not None else pick_device(cfg.device)  # --device cuda without a GPU: now
    cfg = replace(cfg, precision=build_precision(cfg.precision, device, cfg.out,
                                                       model.precision if model is not None else None))
    corpus = read_corpus(cfg.corpus, cfg.corpus_options)
    items, corpus_skips = _select(cfg, corpus)
    settings = _settings(cfg, corpus)
    with store.WriterLock(cfg.out, cfg.command or None):
        area = store.BuildArea(cfg.out)
        base = _check_folder(cfg, area, items)
        check_state(area, settings, check_corpus=not cfg.append and base is None,
                    verb="append to" if cfg.append else "continue",
                    installed=base.manifest.get("build") if base is not None else None)
        area.chunks.discard_partial()
        done = area.chunks.done_ids() | (set(base.as_part().covered_ids()) if base is not None else set())
        pending = items.where(x not in done for x in items.ids())
        links = find_priors(corpus, cfg.priors, cfg.corpus_options) if cfg.priors is not None else None
        if base is not None and not pending and not area.chunks.committed() and not _needs_temporal(base, cfg):
            summary = _summary(base, "complete", 0, t0, None)
            base.close()
            return summary
        area.write_state(settings)
        job = _Job(cfg, area, base, links, pending)
        del corpus, items, pending, done  # the listing is not held through finalisation (job.run drops pending)
        bundle, indexed, rate = job.run(model, device, corpus_skips, settings)
        summary = _summary(bundle, "appended" if base is not None else "built", indexed, t0, rate)
        summary.temporal = job.temporal
        bundle.close()
        return summary


def _needs_temporal(base: Bundle, cfg: BuildConfig) -> bool:
    """True when priors are asked for and the installed version lacks that temporal section."""
    if cfg.priors is None:
        return False
    return bool(base.manifest.get("temporal", {}).get("priors") != cfg.priors.describe())


@dataclass
class _Job:
    """One run's embedding and finalisation (plus the temporal stage on the staged version when asked for)."""

    cfg: BuildConfig
    area: store.BuildArea
    base: Bundle | None
    links: dict[str, PriorLink] | None
    pending: Sequence[Item]  # handed to the embed loop and dropped after it: finalisation does not hold the listing
    temporal: TemporalSummary | None = None

    def steps(self, model: VLModel) -> dict[str, Step]:
        """The build's own derived-file steps: the temporal stage when priors are asked for (its files and manifest
        entry go into the staged version)."""
        links, priors = self.links, self.cfg.priors
        if links is None or priors is None:
            return {}

        def temporal(staging: Path, manifest: dict[str, Any]) -> Derived:
            self.temporal, derived = run_temporal(staging, model, links, priors, self.area.temporal_chunks, self.base,
                                                  progress=self.cfg.progress, log_every_s=self.cfg.log_every_s)
            return derived
        return {"temporal": temporal}

    def run(self, model: VLModel | None, device: torch.device, corpus_skips: list[dict[str, str]],
            settings: dict[str, Any]) -> tuple[Bundle, int, float | None]:
        """Load the model (while decode workers spawn), embed ``pending`` in chunks, finalise; (bundle, indexed,
        rate)."""
        cfg, base, chunks = self.cfg, self.base, self.area.chunks
        pending, self.pending = self.pending, ()
        cores = cpu_count()
        workers = cfg.workers if cfg.workers is not None else (
            max(1, min(cores // 4, 8)) if device.type == "cpu" else max(1, min(cores - 1, 16)))
        # CPU: batch 1 is fastest at 480 px (9.8 vs 4.6 img/s at batch 16 on a 2-core EPYC; activations leave cache)
        batch = cfg.batch_size or (1 if device.type == "cpu" else 64)
        pool = DecodePool(workers, max(2 * batch, 4 * workers))
        pool.start()  # workers spawn while the model loads
        with pool:
            model = model or load_model(cfg.model, cfg.weights_dir, cfg.device, cfg.precision)  # type: ignore[arg-type]
            if base is not None:
                base.check_model(model.identity.to_dict())
            threads = set_threads(model.device, workers, cfg.threads, cores)
            log.info("indexing %d items with %s on %s: %d decode workers, %d threads, batch %d", len(pending),
                     model.spec.name, model.device, workers, threads, batch)
            grid = model.patch_grid
            t_embed = time.perf_counter()
            # each distinct sentence once per build, across resumes/appends; its vectors in a file of the work area
            with seeded_cache(model, base, chunks, self.area.folder / names.TEXT_CACHE) as cache:
                indexed = _embed_all(cfg, model, chunks, pending, grid, pool, batch, cache)
            del pending
            rate = indexed / (time.perf_counter() - t_embed) if indexed else None
        run = {"device": str(model.device), "workers": workers, "threads": threads, "batch_size": batch,
               "append": base is not None}
        patch_store = cfg.patch_store or (base.manifest.get("patch_store") if base is not None else None) or "fp16"
        steps = self.steps(model)
        log.info("finalising: search indexes, 2-D maps and derived files%s", "; then the temporal stage (its own "
                 "progress)" if steps else "")
        bundle = finalise_build(self.area, model, grid, base, corpus_skips, {**settings, "last_run": run},
                                cfg.index_type, steps, patch_store)
        return bundle, indexed, rate


def _summary(bundle: Bundle, status: str, indexed: int, t0: float, rate: float | None) -> BuildSummary:
    reasons = Counter(s.get("reason", "") for s in bundle.skipped)
    return BuildSummary(bundle.root, status, bundle.count, indexed, dict(sorted(reasons.items())),
                        time.perf_counter() - t0, rate, skipped_csv=bundle.skipped_csv)

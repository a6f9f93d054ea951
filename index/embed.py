"""Embed stage and the chunk buffer: decoded images -> vectors; a chunk's reports -> report and sentence vectors.

A report is planned and its window vectors combined by the functions that embed a free-text query
(:mod:`retrieval.inputs.text_embedding`): embedded whole when it fits the text encoder (512 tokens), else as windows
of consecutive sentences whose L2-normalised embeddings are averaged and re-normalised (``LONG_REPORT_STRATEGY``).
Every sentence is embedded; a sentence over the limit is split at words. Nothing is truncated or dropped. The window
and sentence texts of a chunk go to the text encoder together, through the build's dedupe cache (``index.text_cache``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from cxr_explorer.index.corpus import Item
from cxr_explorer.index.decode import Decoded, to_model_input
from cxr_explorer.index.text_cache import TextCache
from cxr_explorer.retrieval.bundle.reader import Part
from cxr_explorer.retrieval.inputs.text_embedding import mean_renormalised, plan_text
from cxr_explorer.retrieval.models import VLModel

log = logging.getLogger(__name__)


@dataclass
class Timers:
    """Seconds spent per stage (the main process's view); ``decode_startup`` = wait for the first decoded image."""

    decode_startup: float = 0.0
    decode_wait: float = 0.0
    image_model: float = 0.0
    text_model: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.__dict__.items()}


@dataclass
class TextResult:
    """Report vectors [r, D] for ``report_rows`` [r], sentence vectors [s, D] for (row, text) ``sentences``."""

    report_emb: np.ndarray
    report_rows: np.ndarray
    sentence_emb: np.ndarray
    sentences: pd.DataFrame
    sentence_lists: list[list[str]]
    windowed: int
    problems: list[dict[str, str]]


def embed_images(model: VLModel, decoded: list[Decoded], timers: Timers, rows: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """B decoded images -> (global [B, D] float32, patches [B, h, w, D] float16), one forward pass of exactly
    ``rows`` images (B <= rows; the rest copies of the first): every forward pass of a build has one shape, so an
    image's vectors do not depend on where a chunk ends or which images were skipped beside it."""
    start = time.perf_counter()
    pixels = [d.pixels for d in decoded]
    pixels += [pixels[0]] * (max(rows or 0, len(pixels)) - len(pixels))
    out = model.encode_images(to_model_input(pixels, model.device))
    timers.image_model += time.perf_counter() - start
    n = len(decoded)
    return out.global_emb[:n].numpy().astype(np.float32), out.patches[:n].numpy().astype(np.float16)


def _plan(model: VLModel, report: str) -> tuple[list[str], list[str]]:
    """(sentences, windows) of one report: windows is [report] unless it is over the token limit."""
    plan = plan_text(report, model.tokenizer.count_tokens, model.tokenizer.max_length)
    return plan.sentences, plan.windows


def _safe_embed(model: VLModel, texts: list[str], batch: int, cache: TextCache | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Embed ``texts`` [T] -> ([T, D], ok mask [T]); each distinct normalised text once (see index.text_cache)."""
    if cache is not None:
        return cache.embed(model, texts, batch)
    with TextCache.for_model(model) as own:
        return own.embed(model, texts, batch)


Plans = dict[str, tuple[list[str], list[str]]]
"""Report -> its (sentences, windows), planned once (:func:`prewarm_texts`) and used by the chunk's commit."""


def prewarm_texts(model: VLModel, reports: list[str], batch: int, timers: Timers, cache: TextCache) -> Plans:
    """Encode the distinct texts (report windows and sentences) of ``reports`` into ``cache`` now: run while the
    decode workers start, it keeps the model busy instead of idle; the chunk's commit then finds them cached and
    takes the returned plans, so no report is split and packed into windows twice."""
    start = time.perf_counter()
    plans = {r: _plan(model, r) for r in dict.fromkeys(reports) if r}
    cache.warm(model, [w for _, ws in plans.values() for w in ws] + [s for ss, _ in plans.values() for s in ss],
               batch)
    timers.text_model += time.perf_counter() - start
    return plans


def embed_reports(model: VLModel, reports: list[str], batch: int, timers: Timers, cache: TextCache | None = None,
                  planned: Plans | None = None) -> TextResult:
    """n cleaned reports ("" = none) -> report vectors (one per non-empty report) and sentence vectors; a report in
    ``planned`` is not planned again."""
    start = time.perf_counter()
    known = planned or {}
    plans = [(known.get(r) or _plan(model, r)) if r else ([], []) for r in reports]
    windows = [(row, w) for row, (_, ws) in enumerate(plans) for w in ws]
    sents = [(row, s) for row, (ss, _) in enumerate(plans) for s in ss]
    emb, ok = _safe_embed(model, [w for _, w in windows] + [s for _, s in sents], batch, cache)
    w_emb, w_ok, s_emb, s_ok = emb[:len(windows)], ok[:len(windows)], emb[len(windows):], ok[len(windows):]
    rows, vecs, problems = [], [], []
    w_rows = np.array([r for r, _ in windows], np.int64)
    for row in sorted(set(w_rows.tolist())):
        mask = (w_rows == row) & w_ok
        if not mask.any():
            problems.append({"row": str(row), "reason": "report-not-embedded", "detail": "text encoder refused it"})
            continue
        rows.append(row)
        vecs.append(mean_renormalised(w_emb[mask]))
    keep = [i for i in range(len(sents)) if s_ok[i]]
    table = pd.DataFrame({"row": np.array([sents[i][0] for i in keep], np.int64), "text": [sents[i][1] for i in keep]})
    timers.text_model += time.perf_counter() - start
    dim = model.spec.joint_dim
    return TextResult(np.asarray(vecs, np.float32).reshape(-1, dim), np.asarray(rows, np.int64),
                      s_emb[keep].reshape(-1, dim), table, [ss for ss, _ in plans],
                      sum(len(ws) > 1 for _, ws in plans), problems)


@dataclass
class ChunkBuffer:
    """Items of the chunk being built, in corpus order: indexed ones with vectors, skipped ones with reasons."""

    items: list[Item] = field(default_factory=list)
    image_emb: list[np.ndarray] = field(default_factory=list)
    patches: list[np.ndarray] = field(default_factory=list)
    thumbnails: list[bytes] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.covered)

    def skip(self, item: Item, reason: str, detail: str) -> None:
        self.skipped.append({"id": item.id, "path": item.path, "reason": reason, "detail": detail})
        self.covered.append(item.id)

    def add(self, items: list[Item], decoded: list[Decoded], emb: np.ndarray, patches: np.ndarray) -> None:
        self.items.extend(items)
        self.image_emb.append(emb)
        self.patches.append(patches)
        self.thumbnails.extend(d.thumbnail for d in decoded)
        self.covered.extend(i.id for i in items)

    def to_part(self, model: VLModel, grid: tuple[int, int], text_batch: int, timers: Timers,
                cache: TextCache | None = None, planned: Plans | None = None) -> tuple[Part, int]:
        """Embed the reports (through the build's text ``cache``; ``planned``: reports already planned) and return
        (Part, reports embedded as windows)."""
        dim = model.spec.joint_dim
        text = embed_reports(model, [i.report for i in self.items], text_batch, timers, cache, planned)
        for p in text.problems:
            item = self.items[int(p["row"])]
            log.warning("report of %s could not be embedded; the image is indexed", item.path)
        meta = pd.DataFrame([{"id": i.id, "path": i.path, "image_abspath": i.abspath, "report": i.report,
                              **i.metadata} for i in self.items], columns=None if self.items else
                            ["id", "path", "image_abspath", "report"])
        meta["sentences"] = text.sentence_lists if self.items else []
        emb = np.concatenate(self.image_emb) if self.image_emb else np.zeros((0, dim), np.float32)
        patches = np.concatenate(self.patches) if self.patches else np.zeros((0, *grid, dim), np.float16)
        part = Part(metadata=meta, image_emb=emb, patches=patches, thumbnails=self.thumbnails,
                    report_emb=text.report_emb, report_rows=text.report_rows, sentence_emb=text.sentence_emb,
                    sentences=text.sentences, skipped=self.skipped, covered=self.covered)
        return part, text.windowed


def set_threads(device: torch.device, workers: int, threads: int | None, cores: int) -> int:
    """Threads for the model in this process: ``threads`` if given, else all cores on CPU, 2 on GPU."""
    n = threads or (cores if device.type == "cpu" else min(2, cores))
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()

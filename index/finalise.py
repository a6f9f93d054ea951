"""Finalisation: the committed chunks (plus, for --append, the existing bundle) become one bundle.

Everything is rebuilt into the build area's staging folder and installed as a new version by
:func:`retrieval.bundle.writer.write_version`; the build area (chunks included) is retired only after that install,
and a rerun recognises an installed build by its ``build_id``, so a crash at any moment leaves either the chunks or
the new version (never both counted).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from cxr_explorer.index.text_cache import text_calls
from cxr_explorer.retrieval.bundle import store
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store import BuildArea, ChunkStore, Part
from cxr_explorer.retrieval.bundle.writer import Step, write_version
from cxr_explorer.retrieval.models import VLModel


def skips_only(skipped: list[dict[str, str]], grid: tuple[int, int], dim: int) -> Part:
    """A part that indexes nothing and records ``skipped`` (rows rejected while reading the corpus)."""
    empty = np.zeros((0, dim), np.float32)
    return Part(metadata=pd.DataFrame(columns=list(store.BASE_COLUMNS)), image_emb=empty,
                patches=np.zeros((0, *grid, dim), np.float16), thumbnails=[], report_emb=empty,
                report_rows=np.zeros(0, np.int64), sentence_emb=empty,
                sentences=pd.DataFrame({"row": np.zeros(0, np.int64), "text": []}), skipped=skipped, covered=[])


def _key(s: dict[str, str]) -> tuple[str, ...]:
    return tuple(str(s.get(k, "")) for k in store.SKIPPED_FIELDS)


def gather_parts(base: Bundle | None, chunks: ChunkStore, corpus_skips: list[dict[str, str]],
                 grid: tuple[int, int], dim: int) -> list[Part]:
    """Base bundle, then chunks in commit order, then corpus-level skips not yet recorded."""
    parts = ([base.as_part()] if base is not None else []) + chunks.parts()
    known = {_key(s) for p in parts for s in p.skipped}
    extra = [s for s in corpus_skips if _key(s) not in known]
    if extra:
        parts.append(skips_only(extra, grid, dim))
    ids = [i for p in parts for i in p.metadata["id"].astype(str)]
    if len(ids) != len(set(ids)):  # cannot happen: pending work always excludes committed ids
        raise RuntimeError("internal error: an item id occurs twice in the committed chunks")
    return parts


def build_record(parts: list[Part], settings: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``build`` section: settings, cumulative stats and timings, skipped counts by reason."""
    stats = store.sum_stats([p.stats for p in parts])
    reasons = Counter(s.get("reason", "") for p in parts for s in p.skipped)
    run_s = stats.get("wall_s", 0.0)
    timings = {k: round(v, 3) for k, v in stats.items() if k.endswith("_s")}
    return {**settings, "timings": timings, "skipped_by_reason": dict(sorted(reasons.items())),
            "windowed_reports": stats.get("windowed_reports", 0),
            "text_encoder": text_calls(stats),
            "images_per_s": round(stats.get("indexed", 0) / run_s, 3) if run_s else None}


def finalise_build(area: BuildArea, model: VLModel, grid: tuple[int, int], base: Bundle | None,
                   corpus_skips: list[dict[str, str]], settings: dict[str, Any], index_type: str,
                   steps: dict[str, Step] | None = None, patch_store: str = "fp16") -> Bundle:
    """Install the finished version (with the build's own derived-file ``steps``, e.g. the temporal stage), retire
    the build area and return the new version opened."""
    dim = model.spec.joint_dim
    parts = gather_parts(base, area.chunks, corpus_skips, grid, dim)
    state = area.state() or {}
    write_version(area.root, parts, identity=model.identity.to_dict(), spec=model.spec.to_dict(),
                  preprocessing=model.preprocessing.to_dict(), grid_shape=grid, dim=dim,
                  build=build_record(parts, settings), index_type=index_type, build_id=state.get("build_id"),
                  steps=steps, patch_store=patch_store)
    if base is not None:
        base.close()
    area.retire()
    store.tidy(area.root)  # the version appended to, unless another reader still holds it
    return Bundle.open(area.root)

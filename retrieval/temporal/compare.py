"""Interval-change queries on an :class:`retrieval.engine.engine.Engine`: a current image with its prior.

``compare_images(engine, current, prior)`` (two uploads, paths or PIL images) and ``compare_case(engine, id)`` (a
bundle case with the prior stored at build time) return a :class:`Comparison`: the fused global embedding and the
zero-shot interval change per finding (cosines and margins). ``search_pair`` ranks the bundle by that embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from cxr_explorer.retrieval.bundle.store.temporal import TemporalRecords
from cxr_explorer.retrieval.engine.engine import Engine, Hit, Target
from cxr_explorer.retrieval.engine.filters import QueryError, WhereInput
from cxr_explorer.retrieval.engine.query_cache import ImageInput, image_bytes
from cxr_explorer.retrieval.inputs.images import load_image
from cxr_explorer.retrieval.temporal.interval import (
    FINDINGS,
    IntervalChange,
    encode_pair,
    has_temporal_path,
    interval_change,
)

__all__ = ["Comparison", "compare_case", "compare_images", "search_pair", "temporal_records", "timeline"]


@dataclass(frozen=True)
class Comparison:
    """A current image with its prior: ``global_emb`` [D] of the fused forward, ``changes`` per finding.

    ``current_id``/``prior_id`` are bundle ids when known; ``source`` is "stored" (embedding from the bundle) or
    "computed" (encoded now)."""

    current_id: str | None
    prior_id: str | None
    global_emb: np.ndarray
    changes: list[IntervalChange]
    source: str


def temporal_records(engine: Engine) -> TemporalRecords | None:
    """The bundle's temporal section (read once per engine), or None when it was built without priors."""
    return engine.temporal


def _check_model(engine: Engine) -> None:
    if not has_temporal_path(engine.model):
        raise QueryError(f"this bundle's model {engine.model.spec.name!r} has no prior-image path; interval change "
                         "needs a BioViL-T bundle (build with --model biovil-t)")


def _pil(image: ImageInput) -> Image.Image:
    data, label = image_bytes(image)
    return load_image(data, name=label).image


def _encode(engine: Engine, current: ImageInput, prior: ImageInput | None) -> np.ndarray:
    cur, prev = _pil(current), (_pil(prior) if prior is not None else None)
    with engine.encoder.lock:
        out = encode_pair(engine.model, cur, prev)
    return out.global_emb[0].numpy().astype(np.float32)


def _changes(engine: Engine, emb: np.ndarray, findings: tuple[str, ...]) -> list[IntervalChange]:
    return interval_change(engine.encoder, torch.from_numpy(np.array(emb, np.float32)), findings)


def compare_images(engine: Engine, current: ImageInput, prior: ImageInput | None,
                   findings: tuple[str, ...] = FINDINGS) -> Comparison:
    """Encode ``current`` with ``prior`` (None: BioViL-T's no-prior path) and score interval change."""
    _check_model(engine)
    emb = _encode(engine, current, prior)
    return Comparison(None, None, emb, _changes(engine, emb, findings), "computed")


def compare_case(engine: Engine, item_id: str, findings: tuple[str, ...] = FINDINGS) -> Comparison:
    """A bundle case with its stored prior: the stored fused embedding, or one computed from the two files."""
    _check_model(engine)
    engine.row_of(item_id)  # unknown ids raise, naming the id
    records = temporal_records(engine)
    if records is None:
        raise QueryError("this bundle was built without priors; rebuild with --priors, --prior-col or "
                         "--patient-col/--order-col, or pass the prior image yourself")
    prior = records.prior_of(item_id)
    if prior is None:
        status, detail = records.status_of(item_id)
        raise QueryError(f"case {item_id!r} has no prior in this bundle ({status}: {detail})")
    stored = records.embedding(item_id)
    if stored is not None:
        return Comparison(item_id, prior, stored, _changes(engine, stored, findings), "stored")
    cur_path = engine.cases.image_path(engine.row_of(item_id))
    prior_path = engine.cases.image_path(engine.row_of(prior))
    emb = _encode(engine, cur_path, prior_path)
    return Comparison(item_id, prior, emb, _changes(engine, emb, findings), "computed")


def search_pair(engine: Engine, current: ImageInput, prior: ImageInput | None, k: int = 10,
                target: Target = "images", where: WhereInput | None = None,
                hide_duplicates: float | None = None) -> list[Hit]:
    """Rank the bundle by the fused (current + prior) global embedding, best first."""
    _check_model(engine)
    return engine.search_embedding(_encode(engine, current, prior), k, target, where, hide_duplicates)


def search_case_with_prior(engine: Engine, item_id: str, k: int = 10, target: Target = "images",
                           where: WhereInput | None = None, hide_duplicates: float | None = None) -> list[Hit]:
    """Rank the bundle by a case's fused embedding (its stored prior); the case itself is excluded."""
    comparison = compare_case(engine, item_id)
    return engine.search_embedding(comparison.global_emb, k, target, where, hide_duplicates,
                          exclude_row=engine.row_of(item_id))


def timeline(engine: Engine, item_id: str) -> list[str]:
    """Ids of the case's linked studies, oldest first ([item_id] alone when the bundle has no priors)."""
    engine.row_of(item_id)
    records = temporal_records(engine)
    return records.timeline(item_id) if records is not None else [item_id]

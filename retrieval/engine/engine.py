"""The query engine: search a bundle by text, image or case, ground phrases, score prompts, find duplicates.

An :class:`Engine` is composed of a :class:`retrieval.engine.query_cache.QueryEncoder` (the model, its lock and the
query caches), a :class:`retrieval.engine.cases.CaseStore` (the bundle's items by row) and a
:class:`retrieval.grounding.grounder.Grounder` built from both (``engine.grounder``: grounding and zero-shot of cases
and images). One Engine is shared by the CLI and every app session: FAISS searches and model forwards run under locks,
and the caches are thread-safe. Scores are cosine similarities in [-1, 1], never probabilities.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import numpy as np

from cxr_explorer.retrieval.bundle.facts import BundleFacts, bundle_facts
from cxr_explorer.retrieval.bundle.reader import Bundle, BundleError
from cxr_explorer.retrieval.bundle.store.temporal import TemporalRecords
from cxr_explorer.retrieval.bundle.targets import TARGETS, Target
from cxr_explorer.retrieval.engine import search as engine_search
from cxr_explorer.retrieval.engine.cases import Case, CaseStore
from cxr_explorer.retrieval.engine.facets import Facet
from cxr_explorer.retrieval.engine.facets import facets as metadata_facets
from cxr_explorer.retrieval.engine.filters import FilterError, QueryError, WhereInput, normalize_where, where_mask
from cxr_explorer.retrieval.engine.query_cache import ImageInput, QueryEncoder
from cxr_explorer.retrieval.grounding.grounder import Grounder, Grounding, SentenceGrounding
from cxr_explorer.retrieval.grounding.maps import NEGATIVE_PNEUMONIA_PROMPTS as NEGATIVE
from cxr_explorer.retrieval.grounding.maps import POSITIVE_PNEUMONIA_PROMPTS as POSITIVE
from cxr_explorer.retrieval.grounding.maps import ZeroShotScore
from cxr_explorer.retrieval.maps.projection import StoredMap, load_map
from cxr_explorer.retrieval.models import VLModel, load_model
from cxr_explorer.retrieval.models.api import pick_device
from cxr_explorer.retrieval.models.precision import query_precision

if TYPE_CHECKING:
    from cxr_explorer.retrieval.curate.base import CurateData

__all__ = ["NEGATIVE", "POSITIVE", "Case", "Engine", "FilterError", "Grounding", "Hit", "QueryError",
           "SentenceGrounding", "Target", "ZeroShotScore"]


@dataclass(frozen=True)
class Hit:
    """One search result; ``rank`` starts at 1, ``score`` is a cosine similarity, ``row`` the bundle item row."""

    rank: int
    score: float
    row: int
    id: str
    path: str
    report: str
    matched_text: str
    target: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Engine:
    """Search and grounding over one bundle with the model that built it."""

    def __init__(self, bundle: Bundle, model: VLModel) -> None:
        self.bundle = bundle
        self.model = model
        self.encoder = QueryEncoder(model)
        self.cases = CaseStore(bundle)
        self.grounder = Grounder(self.encoder, self.cases)
        self._index_lock = threading.Lock()

    @classmethod
    def open(cls, bundle_dir: str | os.PathLike[str], weights_dir: str | os.PathLike[str] | None = None,
             device: str = "auto", model: VLModel | None = None) -> Engine:
        """Open a bundle and load its model (or check that ``model`` is the one that built it)."""
        bundle = Bundle.open(bundle_dir, expect_model=model.spec.name if model is not None else None)
        if model is None:
            precision = query_precision(bundle.manifest.get("build", {}).get("precision"), pick_device(device))
            model = load_model(bundle.model_name, weights_dir, device, precision)  # the bundle's precision or better
        check_model(bundle, model)
        return cls(bundle, model)

    # ----- what the bundle is --------------------------------------------------------------------------------------

    @cached_property
    def facts(self) -> BundleFacts:
        """The bundle's manifest facts (folder name, model record, counts, indexes, skipped items, stored maps)."""
        return bundle_facts(self.bundle)

    @cached_property
    def temporal(self) -> TemporalRecords | None:
        """The bundle's temporal section (priors, fused embeddings), or None when it was built without priors."""
        return TemporalRecords.open(self.bundle.folder)

    def facets(self) -> list[Facet]:
        """Categorical metadata columns with value counts (multi-label cells split), numeric ones as ranges."""
        return metadata_facets(self.bundle.metadata, self.bundle.metadata_columns, self.bundle.label_separators)

    def curate_data(self) -> CurateData:
        """The bundle's image and report vectors, FAISS indexes, ids, metadata and thumbnails as the curation
        checks read them (:func:`retrieval.curate.base.data_from_bundle`)."""
        from cxr_explorer.retrieval.curate import data_from_bundle  # the checks load only where curation is used

        return data_from_bundle(self.bundle)

    def newer_version_available(self) -> bool:
        """True when a newer version of the bundle was installed since this engine opened its version (the app's
        live check: its pages reach the bundle only through the engine)."""
        return self.bundle.newer_version_available()

    def stored_map(self, target: Target, method: str) -> StoredMap | None:
        """The 2-D map of ``target``'s vectors by ``method`` stored by the offline job, or None when there is none."""
        vectors = np.asarray(self.bundle.vectors(target), dtype=np.float32)
        return load_map(self.bundle.folder, target, method, vectors)

    # ----- embeddings and rows -------------------------------------------------------------------------------------

    def text_embedding(self, text: str) -> np.ndarray:
        """L2-normalised [D] float32 embedding of ``text`` (LRU-cached, read-only)."""
        return self.encoder.text_embedding(text)

    def image_embedding(self, image: ImageInput) -> np.ndarray:
        """L2-normalised global [D] embedding of an image (bytes, path or PIL; one cached forward)."""
        return self.encoder.image_embedding(image)

    def row_of(self, row_or_id: int | str) -> int:
        """An item row from a row number (checked: QueryError outside the bundle) or an item id (unknown ids raise
        BundleError naming the id)."""
        return self.bundle.row_of(row_or_id) if isinstance(row_or_id, str) else self.cases.check_row(row_or_id)

    # ----- search --------------------------------------------------------------------------------------------------

    def search_text(self, text: str, k: int = 10, target: Target = "images", where: WhereInput | None = None,
                    hide_duplicates: float | None = None) -> list[Hit]:
        """Items (or sentences) most similar to a text query, best first."""
        return self.search_embedding(self.text_embedding(text), k, target, where, hide_duplicates)

    def search_image(self, image: ImageInput, k: int = 10, target: Target = "images", where: WhereInput | None = None,
                     hide_duplicates: float | None = None) -> list[Hit]:
        """Items (or sentences) most similar to an uploaded image (bytes, path or PIL), best first."""
        return self.search_embedding(self.image_embedding(image), k, target, where, hide_duplicates)

    def search_id(self, id: int | str, k: int = 10, target: Target = "images", where: WhereInput | None = None,
                  hide_duplicates: float | None = None) -> list[Hit]:
        """Items most similar to a bundle case (row or id; its stored image vector); the case itself is excluded.

        With ``hide_duplicates`` near-copies of the case itself are hidden too.
        """
        row = self.row_of(id)
        return self.search_embedding(self.cases.image_vector(row), k, target, where, hide_duplicates,
                                     exclude_row=row)

    def search_embedding(self, query: np.ndarray, k: int = 10, target: Target = "images",
                         where: WhereInput | None = None, hide_duplicates: float | None = None,
                         exclude_row: int | None = None) -> list[Hit]:
        """Filtered search by an L2-normalised [D] query vector, growing the candidate pool until ``k`` hits survive
        the exclusion of ``exclude_row`` and duplicate hiding."""
        k = engine_search.check_k(k)
        if target not in TARGETS:
            raise QueryError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
        engine_search.check_threshold(hide_duplicates, target)
        allowed = self._allowed(target, where)
        index, vectors = self.bundle.index(target), partial(self.bundle.vectors, target)
        rows_of = self.cases.position_rows(target)
        want = k + (1 if exclude_row is not None else 0)
        while True:
            cands = engine_search.filtered_search(index, vectors, allowed, query, want, self._index_lock)
            keep = self._postprocess(cands, rows_of, exclude_row, hide_duplicates)
            if len(keep) >= k or cands.exhausted:
                break
            want *= 2
        keep = keep[:k]
        return [self._hit(rank + 1, float(cands.scores[i]), int(cands.positions[i]), target)
                for rank, i in enumerate(keep)]

    def count_matching(self, target: Target, where: WhereInput | None) -> int:
        """How many vectors of ``target`` pass ``where`` (all of them without a filter)."""
        allowed = self._allowed(target, where)
        return int(len(self.cases.position_rows(target)) if allowed is None else allowed.sum())

    def _allowed(self, target: Target, where: WhereInput | None) -> np.ndarray | None:
        """Bool mask [M] over FAISS positions that pass ``where`` (None when there is no filter)."""
        clauses = normalize_where(where, self.bundle.metadata_columns)
        if not clauses:
            return None
        item_mask = where_mask(self.bundle.metadata, clauses, self.bundle.label_separators)
        return item_mask[self.cases.position_rows(target)]

    def _postprocess(self, cands: engine_search.Candidates, rows_of: np.ndarray, exclude_row: int | None,
                     hide_duplicates: float | None) -> np.ndarray:
        """Indices into ``cands`` that survive the self-exclusion and duplicate hiding, best first."""
        rows = rows_of[cands.positions]
        idx = np.arange(len(rows))
        if exclude_row is not None:
            idx = idx[rows != exclude_row]
        if hide_duplicates is not None:
            seed = (exclude_row,) if exclude_row is not None else ()
            keep = engine_search.drop_near_duplicates(rows[idx], self.cases.row_vectors(), hide_duplicates, seed)
            idx = idx[keep]
        return idx

    def _hit(self, rank: int, score: float, position: int, target: Target) -> Hit:
        """Build a Hit for a FAISS position of ``target``."""
        row = int(self.cases.position_rows(target)[position])
        meta = self.bundle.metadata.iloc[row]
        report = str(meta.get("report") or "")
        if target == "sentences":
            matched = self.cases.sentence_text(int(self.cases.position_ids(target)[position]))
        else:
            matched = report if target == "reports" else ""
        return Hit(rank=rank, score=float(np.clip(score, -1.0, 1.0)), row=row, id=str(meta["id"]),
                   path=str(self.cases.image_path(row)), report=report, matched_text=matched, target=target,
                   metadata=self.cases.metadata_of(row))

    def sentence_similarities(self, row: int, text: str) -> list[float]:
        """Cosine of ``text`` with each stored sentence of item ``row``, aligned with ``case(row).sentences`` (-1 where
        a sentence has no stored vector)."""
        positions = np.flatnonzero(self.cases.position_rows("sentences") == self.cases.check_row(row))
        if not len(positions):
            return []
        vecs = np.asarray(self.bundle.vectors("sentences"))[positions]
        texts = [self.cases.sentence_text(int(i)) for i in self.cases.position_ids("sentences")[positions]]
        by_text = dict(zip(texts, (vecs @ self.text_embedding(text)).tolist(), strict=True))
        return [float(by_text.get(s, -1.0)) for s in self.case(row).sentences]

    # ----- cases ---------------------------------------------------------------------------------------------------

    def case(self, row_or_id: int | str) -> Case:
        """One bundle item by row number or id."""
        return self.cases.case(self.row_of(row_or_id))

    def duplicates(self, threshold: float = 0.95, max_pairs: int = 100_000, neighbours: int = 10) -> list[list[int]]:
        """Groups of item rows whose image vectors are near-duplicates (cosine >= threshold), largest first.

        Built from a kNN self-search of ``neighbours`` per item (pairs capped at ``max_pairs``) and connected
        components, so chains of near-duplicates form one group.
        """
        engine_search.check_threshold(threshold, "images")
        index = self.bundle.index("images")
        rows = self.cases.position_rows("images")
        pairs = engine_search.near_duplicate_pairs(index, self.bundle.vectors("images"), rows, float(threshold),
                                                   neighbours, max_pairs, self._index_lock)
        return engine_search.connected_groups(self.bundle.count, pairs)


def check_model(bundle: Bundle, model: VLModel) -> None:
    """Refuse a model that did not build ``bundle`` (other name, revision, image weights or preprocessing)."""
    if model.spec.name != bundle.model_name:
        raise BundleError(f"bundle {bundle.root} was built with model {bundle.model_name!r}, "
                          f"not {model.spec.name!r}")
    bundle.check_model(model.identity.to_dict())
    if model.preprocessing != bundle.preprocessing:
        raise BundleError(f"bundle {bundle.root} was built with preprocessing {bundle.preprocessing.to_dict()}, "
                          f"the model uses {model.preprocessing.to_dict()}")

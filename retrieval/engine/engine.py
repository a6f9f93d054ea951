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
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import numpy as np

from cxr_explorer.retrieval.bundle.facts import BundleFacts, bundle_facts
from cxr_explorer.retrieval.bundle.reader import Bundle, BundleError
from cxr_explorer.retrieval.bundle.store.temporal import TemporalRecords
from cxr_explorer.retrieval.bundle.targets import TARGETS, Target
from cxr_explorer.retrieval.engine import compose
from cxr_explorer.retrieval.engine import search as engine_search
from cxr_explorer.retrieval.engine.cases import Case, CaseStore
from cxr_explorer.retrieval.engine.compose import Dropped, PartScore, QueryPart
from cxr_explorer.retrieval.engine.facets import Facet
from cxr_explorer.retrieval.engine.facets import facets as metadata_facets
from cxr_explorer.retrieval.engine.feedback import Marked, check_marks, rocchio
from cxr_explorer.retrieval.engine.filters import FilterError, QueryError, WhereInput, normalize_where, where_mask
from cxr_explorer.retrieval.engine.findings import FindingRank, check_min_margin, margins
from cxr_explorer.retrieval.engine.query_cache import ImageInput, QueryEncoder
from cxr_explorer.retrieval.grounding.grounder import Grounder, Grounding, SentenceGrounding
from cxr_explorer.retrieval.grounding.maps import NEGATIVE_PNEUMONIA_PROMPTS as NEGATIVE
from cxr_explorer.retrieval.grounding.maps import POSITIVE_PNEUMONIA_PROMPTS as POSITIVE
from cxr_explorer.retrieval.grounding.maps import ZeroShotScore
from cxr_explorer.retrieval.maps.projection import StoredMap, load_map
from cxr_explorer.retrieval.models import VLModel, load_model
from cxr_explorer.retrieval.models.api import pick_device
from cxr_explorer.retrieval.models.precision import query_precision

COLLECTION_KEY = "collection"
"""The where-key that filters by a collection's members (``--where collection=NAME``)."""

if TYPE_CHECKING:
    from cxr_explorer.retrieval.curate.base import CurateData

__all__ = ["NEGATIVE", "POSITIVE", "Case", "ComposedHit", "ComposedResult", "Engine", "FilterError", "FindingRank",
           "Grounding", "Hit", "QueryError", "QueryPart", "SentenceGrounding", "Target", "ZeroShotScore"]


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


@dataclass(frozen=True)
class ComposedHit:
    """A hit of a composed query: ``hit.score`` is the composed score clipped to [-1, 1] for display, ``score`` the
    exact one (``base`` minus penalties), ``base`` the cosine with the (feedback-moved) positive query, ``parts`` each
    part's cosine and contribution, ``margin`` the finding's zero-shot margin when ranking by one, ``pinned`` True for
    a case marked relevant and shown first."""

    hit: Hit
    score: float
    base: float
    parts: tuple[PartScore, ...]
    margin: float | None = None
    pinned: bool = False


@dataclass(frozen=True)
class ComposedResult:
    """What a composed query returns: ``hits`` best first, ``dropped`` the candidates that a negative part's threshold
    removed from above the last hit (best first), and ``query`` the final L2-normalised query vector [D]."""

    hits: list[ComposedHit]
    dropped: list[Dropped]
    query: np.ndarray


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

    def search_composed(self, parts: list[QueryPart], k: int = 10, target: Target = "images",
                        where: WhereInput | None = None, hide_duplicates: float | None = None,
                        relevant: tuple[str, ...] | list[str] = (), not_relevant: tuple[str, ...] | list[str] = (),
                        marked: Marked = "pin", finding: FindingRank | None = None) -> ComposedResult:
        """A composed query (:mod:`retrieval.engine.compose`): weighted positive parts make the query, negative parts
        penalise or exclude, the marks move it (Rocchio, :mod:`retrieval.engine.feedback`), ``finding`` filters by a
        minimum zero-shot margin and/or re-sorts the ``k`` hits by it. Corpus cases given as parts are never hits."""
        parts = compose.check_parts(parts)
        k = engine_search.check_k(k)
        if target not in TARGETS:
            raise QueryError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
        engine_search.check_threshold(hide_duplicates, target)
        rel_ids, non_ids = check_marks(relevant, not_relevant, marked)
        min_margin = check_min_margin(finding.min_margin) if finding is not None else None
        part_vecs, part_rows = self._part_vectors(parts)
        positive = [i for i, p in enumerate(parts) if not p.negative]
        weights = [float(parts[i].weight) for i in positive]
        total = np.sum([w * part_vecs[i] for w, i in zip(weights, positive, strict=True)], axis=0)
        query = compose.combine([part_vecs[i] for i in positive], weights)
        rel_rows = [self.row_of(i) for i in rel_ids]
        non_rows = [self.row_of(i) for i in non_ids]
        if rel_rows or non_rows:
            query = rocchio(query, self._target_vectors(rel_rows, target), self._target_vectors(non_rows, target))
        hidden = set(part_rows) | (set(rel_rows) | set(non_rows) if marked in ("pin", "hide") else set())
        finding_vecs = self._finding_vectors(finding)
        scale = float(np.linalg.norm(total))
        allowed = self._allowed(target, where)
        index, vectors = self.bundle.index(target), partial(self.bundle.vectors, target)
        rows_of = self.cases.position_rows(target)
        pinned = [self._composed_pin(r, target, query, part_vecs, parts, scale, finding_vecs) for r in rel_rows
                  if marked == "pin"]
        want = max(4 * (k + len(hidden)), 64)
        while True:
            cands = engine_search.filtered_search(index, vectors, allowed, query, want, self._index_lock)
            cand_vecs = np.asarray(vectors()[cands.positions], dtype=np.float32)
            scored = compose.part_scores(cand_vecs, query, part_vecs, parts)
            rows = rows_of[cands.positions]
            order = np.lexsort((cands.positions, -scored.score))
            ok = np.array([scored.excluded_by[i] < 0 and int(rows[i]) not in hidden for i in order], dtype=bool)
            keep = order[ok] if len(order) else order
            margin_of: dict[int, float] = {}
            if finding_vecs is not None and len(keep):
                m = margins(self.cases.row_vectors()[np.sort(np.unique(rows[keep]))], *finding_vecs)
                margin_of = dict(zip(np.sort(np.unique(rows[keep])).tolist(), m.tolist(), strict=True))
                if min_margin is not None:
                    keep = keep[[margin_of[int(rows[i])] >= min_margin for i in keep]]
            if hide_duplicates is not None and len(keep):
                seed = tuple(sorted(set(part_rows)))
                keep = keep[engine_search.drop_near_duplicates(rows[keep], self.cases.row_vectors(),
                                                               hide_duplicates, seed)]
            if len(keep) + len(pinned) >= k or cands.exhausted:
                break
            want *= 4
        keep = keep[:max(0, k - len(pinned))]
        hits = [*pinned[:k]]
        for i in keep:
            hit = self._hit(0, float(scored.score[i]), int(cands.positions[i]), target)
            hits.append(ComposedHit(hit=hit, score=float(scored.score[i]), base=float(scored.base[i]),
                                    parts=compose.explain(scored, int(i), scale), margin=margin_of.get(int(rows[i]))))
        if finding is not None and finding.sort:
            hits = [*[h for h in hits if h.pinned], *sorted((h for h in hits if not h.pinned),
                                                            key=lambda h: -(h.margin if h.margin is not None else -9))]
        hits = [replace(h, hit=replace(h.hit, rank=rank)) for rank, h in enumerate(hits, start=1)]
        floor = min((h.base for h in hits if not h.pinned), default=-np.inf)
        dropped = [Dropped(row=int(rows[i]), id=str(self.cases.ids[int(rows[i])]), base=float(scored.base[i]),
                           part=parts[int(scored.excluded_by[i])].label, similarity=float(
                               scored.sims[i, int(scored.excluded_by[i])]),
                           threshold=float(parts[int(scored.excluded_by[i])].exclude_above or 0.0))
                   for i in np.argsort(-scored.base) if scored.excluded_by[i] >= 0 and scored.base[i] >= floor]
        return ComposedResult(hits=hits, dropped=dropped[:100], query=query)

    def rank_by_finding(self, hits: list[Hit], finding: FindingRank) -> list[tuple[Hit, float]]:
        """Any result set with each hit's zero-shot margin for ``finding`` (its case's stored image vector): hits below
        ``finding.min_margin`` dropped, sorted by margin (best first) when ``finding.sort``, ranks renumbered."""
        min_margin = check_min_margin(finding.min_margin)
        pos, neg = self._finding_vectors(finding) or (np.zeros(0), np.zeros(0))
        rows = [h.row for h in hits]
        m = margins(self.cases.row_vectors()[rows], pos, neg) if rows else np.zeros(0, np.float32)
        pairs = [(h, float(v)) for h, v in zip(hits, m.tolist(), strict=True)
                 if min_margin is None or v >= min_margin]
        if finding.sort:
            pairs.sort(key=lambda p: -p[1])
        return [(replace(h, rank=rank), v) for rank, (h, v) in enumerate(pairs, start=1)]

    def _finding_vectors(self, finding: FindingRank | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The positive and negative prompt-set vectors [D] of ``finding`` (None without one)."""
        if finding is None:
            return None
        pos, neg = self.encoder.prompt_set_embeddings(list(finding.prompts()))
        return pos, neg

    def _part_vectors(self, parts: list[QueryPart]) -> tuple[np.ndarray, list[int]]:
        """[P, D] vectors of the parts (texts encoded, images forwarded, cases' stored vectors) and the rows of the
        corpus cases among them."""
        vecs, rows = [], []
        texts = iter(self.encoder.text_embeddings([str(p.value) for p in parts if p.kind == "text"]))
        for part in parts:
            if part.kind == "text":
                vecs.append(next(texts))
            elif part.kind == "image":
                vecs.append(self.image_embedding(part.value))
            else:
                rows.append(self.row_of(str(part.value)))
                vecs.append(self.cases.image_vector(rows[-1]))
        return np.stack(vecs).astype(np.float32), rows

    def _target_vectors(self, rows: list[int], target: Target) -> np.ndarray:
        """One [D] vector per row in ``target``'s space: the image vector, the report vector, or the mean of the
        row's sentence vectors (rows without one are left out) -> [R, D]."""
        if not rows:
            return np.zeros((0, self.vector_width()), np.float32)
        if target == "images":
            return np.asarray(self.cases.row_vectors()[rows], dtype=np.float32)
        pos_rows = self.cases.position_rows(target)
        picked = np.flatnonzero(np.isin(pos_rows, rows))
        vecs = np.asarray(self.bundle.vectors(target)[picked], dtype=np.float32)
        out = [vecs[pos_rows[picked] == r].mean(axis=0) for r in rows if np.any(pos_rows[picked] == r)]
        return np.stack(out) if out else np.zeros((0, self.vector_width()), np.float32)

    def vector_width(self) -> int:
        """The width D of the bundle's vectors."""
        return int(self.cases.row_vectors().shape[1])

    def _composed_pin(self, row: int, target: Target, query: np.ndarray, part_vecs: np.ndarray,
                      parts: list[QueryPart], scale: float,
                      finding_vecs: tuple[np.ndarray, np.ndarray] | None) -> ComposedHit:
        """A case marked relevant, shown first: scored like any candidate (its best vector in ``target``)."""
        vec = self._target_vectors([row], target)
        vec = vec if len(vec) else self.cases.row_vectors()[[row]]
        scored = compose.part_scores(vec, query, part_vecs, parts)
        positions = np.flatnonzero(self.cases.position_rows(target) == row)
        where = target if len(positions) else "images"  # a case without a report is pinned by its image
        position = int(positions[0] if len(positions) else np.flatnonzero(self.cases.position_rows("images") == row)[0])
        hit = self._hit(0, float(scored.score[0]), position, where)
        margin = float(margins(self.cases.row_vectors()[[row]], *finding_vecs)[0]) if finding_vecs else None
        return ComposedHit(hit=hit, score=float(scored.score[0]), base=float(scored.base[0]),
                           parts=compose.explain(scored, 0, scale), margin=margin, pinned=True)

    def count_matching(self, target: Target, where: WhereInput | None) -> int:
        """How many vectors of ``target`` pass ``where`` (all of them without a filter)."""
        allowed = self._allowed(target, where)
        return int(len(self.cases.position_rows(target)) if allowed is None else allowed.sum())

    def _allowed(self, target: Target, where: WhereInput | None) -> np.ndarray | None:
        """Bool mask [M] over FAISS positions that pass ``where`` (None when there is no filter).

        ``collection=NAME`` (OR over several names) keeps the cases of the bundle's collections
        (:mod:`retrieval.collections.store`), unless the bundle has a metadata column of that name.
        """
        columns = self.bundle.metadata_columns
        rest = dict(where or {})
        names = rest.pop(COLLECTION_KEY, None) if COLLECTION_KEY not in columns else None
        clauses = normalize_where(rest, [*columns, COLLECTION_KEY] if COLLECTION_KEY not in columns else columns)
        if not clauses and names is None:
            return None
        item_mask = where_mask(self.bundle.metadata, clauses, self.bundle.label_separators)
        if names is not None:
            item_mask &= self._collection_mask(names)
        return item_mask[self.cases.position_rows(target)]

    def _collection_mask(self, names: object) -> np.ndarray:
        """Bool mask [N] over rows that belong to any of the named collections (unknown names are a QueryError)."""
        from cxr_explorer.retrieval.collections.store import Collection

        wanted = [names] if isinstance(names, str) else list(names) if isinstance(names, (list, tuple)) else [names]
        members: set[str] = set()
        for name in wanted:
            members |= set(Collection(self.bundle.root, str(name)).members())
        return self.bundle.metadata["id"].astype(str).isin(members).to_numpy()

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

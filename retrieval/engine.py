"""The query engine: search a bundle by text, image or case, ground phrases, score prompts, find duplicates.

One :class:`Engine` is shared by the CLI and every app session: FAISS searches and model forwards run under locks,
and the text / upload caches are thread-safe. Scores are cosine similarities in [-1, 1], never probabilities.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, cast

import numpy as np
import torch
from PIL import Image

from retrieval import engine_search as S
from retrieval.bundle import Bundle, BundleError
from retrieval.engine_ground import LRU, Grounding, GroundingMixin, ImageInput, SentenceGrounding, UploadEncoding
from retrieval.filters import FilterError, QueryError, WhereInput, normalize_where, where_mask
from retrieval.grounding import NEGATIVE_PNEUMONIA_PROMPTS as NEGATIVE
from retrieval.grounding import POSITIVE_PNEUMONIA_PROMPTS as POSITIVE
from retrieval.grounding import ZeroShotScore
from retrieval.imageio import load_image
from retrieval.long_text import embed_windows, plan_text
from retrieval.models import VLModel, load_model
from retrieval.models.api import pick_device
from retrieval.models.precision import query_precision

__all__ = ["NEGATIVE", "POSITIVE", "Case", "Engine", "FilterError", "Grounding", "Hit", "QueryError",
           "SentenceGrounding", "ZeroShotScore"]

Target = Literal["images", "reports", "sentences"]
TARGETS: tuple[str, ...] = ("images", "reports", "sentences")


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
class Case:
    """One bundle item: its image path (absolute, as recorded), report, sentences, metadata and original size."""

    row: int
    id: str
    path: str
    report: str
    sentences: list[str]
    metadata: dict[str, Any]
    width: int
    height: int


class Engine(GroundingMixin):
    """Search and grounding over one bundle with the model that built it."""

    def __init__(self, bundle: Bundle, model: VLModel) -> None:
        self.bundle = bundle
        self.model = model
        self._model_lock = threading.RLock()
        self._index_lock = threading.Lock()
        self._texts: LRU[str, np.ndarray] = LRU(512)
        self._uploads: LRU[str, UploadEncoding] = LRU(4)
        self._prompt_cache: LRU[tuple[str, ...], torch.Tensor] = LRU(16)
        self._sizes: dict[int, tuple[int, int]] = {}
        self._pos_rows: dict[str, np.ndarray] = {}
        self._pos_ids: dict[str, np.ndarray] = {}
        self._row_vectors: np.ndarray | None = None

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

    # ----- embeddings and rows -------------------------------------------------------------------------------------

    def text_embedding(self, text: str) -> np.ndarray:
        """L2-normalised [D] float32 embedding of ``text`` (LRU-cached, read-only); a text over the encoder's limit
        is embedded as sentence windows (:mod:`retrieval.long_text`)."""

        def compute() -> np.ndarray:
            tok = self.model.tokenizer
            plan = plan_text(text, tok.count_tokens, tok.max_length) if text.strip() else None
            with self._model_lock:
                if plan is None or len(plan.windows) == 1:
                    emb = self.model.embed_texts([text])[0].numpy().astype(np.float32)
                else:  # longer than the encoder takes: sentence windows, as the offline job embeds long reports
                    emb = embed_windows(plan.windows, lambda ws: self.model.embed_texts(ws).numpy())
            emb.setflags(write=False)
            return emb

        return self._texts.get_or_compute(text, compute)

    def image_embedding(self, image: ImageInput) -> np.ndarray:
        """L2-normalised global [D] embedding of an uploaded image (one cached forward)."""
        return self.encode_upload(image).global_emb

    def check_row(self, row: int) -> int:
        """``row`` as an int, or a QueryError when it is outside the bundle."""
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= int(row) < self.bundle.count:
            raise QueryError(f"row {row!r} is outside the bundle (0..{self.bundle.count - 1})")
        return int(row)

    def row_of(self, row_or_id: int | str) -> int:
        """An item row from a row number or an item id (unknown ids raise BundleError naming the id)."""
        return self.bundle.row_of(row_or_id) if isinstance(row_or_id, str) else self.check_row(row_or_id)

    def row_vectors(self) -> np.ndarray:
        """Image vectors [N, D] indexed by item row (a view when FAISS positions already are rows)."""
        if self._row_vectors is None:
            vecs, ids = self.bundle.vectors("images"), self.bundle.ids("images")
            if np.array_equal(ids, np.arange(len(ids))):
                self._row_vectors = vecs
            else:
                out = np.zeros((self.bundle.count, vecs.shape[1]), dtype=np.float32)
                out[ids] = vecs
                self._row_vectors = out
        return self._row_vectors

    def image_vector(self, row: int) -> np.ndarray:
        """Stored global image embedding [D] float32 of item ``row``."""
        return np.array(self.row_vectors()[self.check_row(row)], dtype=np.float32)

    # ----- search --------------------------------------------------------------------------------------------------

    def search_text(self, text: str, k: int = 10, target: Target = "images", where: WhereInput | None = None,
                    hide_duplicates: float | None = None) -> list[Hit]:
        """Items (or sentences) most similar to a text query, best first."""
        return self._search(self.text_embedding(text), k, target, where, hide_duplicates)

    def search_image(self, image: ImageInput, k: int = 10, target: Target = "images", where: WhereInput | None = None,
                     hide_duplicates: float | None = None) -> list[Hit]:
        """Items (or sentences) most similar to an uploaded image (bytes, path or PIL), best first."""
        return self._search(self.image_embedding(image), k, target, where, hide_duplicates)

    def search_id(self, id: int | str, k: int = 10, target: Target = "images", where: WhereInput | None = None,
                  hide_duplicates: float | None = None) -> list[Hit]:
        """Items most similar to a bundle case (its stored image vector); the case itself is excluded.

        With ``hide_duplicates`` near-copies of the case itself are hidden too.
        """
        row = self.row_of(id)
        return self._search(self.image_vector(row), k, target, where, hide_duplicates, exclude_row=row)

    def _ids(self, target: str) -> np.ndarray:
        """FAISS position -> item row (images, reports) or sentence id (sentences), [M] int64 (cached)."""
        if target not in self._pos_ids:
            self._pos_ids[target] = np.asarray(self.bundle.ids(target), dtype=np.int64)  # type: ignore[arg-type]
        return self._pos_ids[target]

    def _positions_to_rows(self, target: str) -> np.ndarray:
        """Item row [M] of each FAISS position of ``target`` (cached)."""
        if target not in self._pos_rows:
            ids = self._ids(target)
            if target == "sentences":
                ids = self.bundle.sentences["row"].to_numpy(dtype=np.int64)[ids]
            self._pos_rows[target] = ids
        return self._pos_rows[target]

    def _search(self, query: np.ndarray, k: int, target: str, where: WhereInput | None, hide_duplicates: float | None,
                exclude_row: int | None = None) -> list[Hit]:
        """Filtered search, growing the candidate pool until ``k`` hits survive exclusion and duplicate hiding."""
        k = S.check_k(k)
        if target not in TARGETS:
            raise QueryError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
        S.check_threshold(hide_duplicates, target)
        allowed = self._allowed(target, where)
        tgt = cast(Target, target)
        index, vectors = self.bundle.index(tgt), partial(self.bundle.vectors, tgt)
        rows_of = self._positions_to_rows(target)
        want = k + (1 if exclude_row is not None else 0)
        while True:
            cands = S.filtered_search(index, vectors, allowed, query, want, self._index_lock)
            keep = self._postprocess(cands, rows_of, exclude_row, hide_duplicates)
            if len(keep) >= k or cands.exhausted:
                break
            want *= 2
        keep = keep[:k]
        return [self._hit(rank + 1, float(cands.scores[i]), int(cands.positions[i]), target)
                for rank, i in enumerate(keep)]

    def _allowed(self, target: str, where: WhereInput | None) -> np.ndarray | None:
        """Bool mask [M] over FAISS positions that pass ``where`` (None when there is no filter)."""
        clauses = normalize_where(where, list(self.bundle.metadata_columns))
        if not clauses:
            return None
        item_mask = where_mask(self.bundle.metadata, clauses, self.bundle.label_separators)
        return item_mask[self._positions_to_rows(target)]

    def _postprocess(self, cands: S.Candidates, rows_of: np.ndarray, exclude_row: int | None,
                     hide_duplicates: float | None) -> np.ndarray:
        """Indices into ``cands`` that survive the self-exclusion and duplicate hiding, best first."""
        rows = rows_of[cands.positions]
        idx = np.arange(len(rows))
        if exclude_row is not None:
            idx = idx[rows != exclude_row]
        if hide_duplicates is not None:
            seed = (exclude_row,) if exclude_row is not None else ()
            idx = idx[S.drop_near_duplicates(rows[idx], self.row_vectors(), hide_duplicates, seed)]
        return idx

    def _hit(self, rank: int, score: float, position: int, target: str) -> Hit:
        """Build a Hit for a FAISS position of ``target``."""
        rows_of = self._positions_to_rows(target)
        row = int(rows_of[position])
        meta = self.bundle.metadata.iloc[row]
        report = str(meta.get("report") or "")
        if target == "sentences":
            matched = str(self.bundle.sentences["text"].iloc[int(self._ids(target)[position])])
        else:
            matched = report if target == "reports" else ""
        return Hit(rank=rank, score=float(np.clip(score, -1.0, 1.0)), row=row, id=str(meta["id"]),
                   path=str(self.bundle.image_path(row)), report=report, matched_text=matched, target=target,
                   metadata=self.metadata_of(row))

    # ----- cases ---------------------------------------------------------------------------------------------------

    def metadata_of(self, row: int) -> dict[str, Any]:
        """The user metadata columns of item ``row`` as JSON-friendly values."""
        meta = self.bundle.metadata.iloc[self.check_row(row)]
        return {str(c): S.json_value(meta[c]) for c in self.bundle.metadata_columns}

    def case(self, row_or_id: int | str) -> Case:
        """One bundle item by row number or id."""
        row = self.row_of(row_or_id)
        meta = self.bundle.metadata.iloc[row]
        sentences = meta.get("sentences")
        sentences = [] if sentences is None or isinstance(sentences, float) else [str(s) for s in sentences]
        width, height = self.original_size(row)
        return Case(row=row, id=str(meta["id"]), path=str(self.bundle.image_path(row)),
                    report=str(meta.get("report") or ""), sentences=sentences, metadata=self.metadata_of(row),
                    width=width, height=height)

    def thumbnail(self, row: int) -> Image.Image:
        """The stored thumbnail of item ``row`` (longest side <= 256) as a PIL image."""
        img = Image.open(io.BytesIO(self.bundle.thumbnail(self.check_row(row))))
        img.load()
        return img

    def full_image(self, row: int) -> Image.Image:
        """The original image of item ``row``, decoded (grayscale "L") from the path recorded in the bundle."""
        return load_image(self.bundle.image_path(self.check_row(row))).image

    def duplicates(self, threshold: float = 0.95, max_pairs: int = 100_000, neighbours: int = 10) -> list[list[int]]:
        """Groups of item rows whose image vectors are near-duplicates (cosine >= threshold), largest first.

        Built from a kNN self-search of ``neighbours`` per item (pairs capped at ``max_pairs``) and connected
        components, so chains of near-duplicates form one group.
        """
        S.check_threshold(threshold, "images")
        index = self.bundle.index("images")
        rows = self._positions_to_rows("images")
        pairs = S.near_duplicate_pairs(index, self.bundle.vectors("images"), rows, float(threshold), neighbours,
                                       max_pairs, self._index_lock)
        return S.connected_groups(self.bundle.count, pairs)


def check_model(bundle: Bundle, model: VLModel) -> None:
    """Refuse a model that did not build ``bundle`` (other name, revision, image weights or preprocessing)."""
    if model.spec.name != bundle.model_name:
        raise BundleError(f"bundle {bundle.root} was built with model {bundle.model_name!r}, "
                          f"not {model.spec.name!r}")
    bundle.check_model(model.identity.to_dict())
    if model.preprocessing != bundle.preprocessing:
        raise BundleError(f"bundle {bundle.root} was built with preprocessing {bundle.preprocessing.to_dict()}, "
                          f"the model uses {model.preprocessing.to_dict()}")

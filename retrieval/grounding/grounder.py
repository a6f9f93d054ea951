"""Phrase grounding and zero-shot scoring of images and of bundle cases.

A :class:`Grounder` is composed of a :class:`retrieval.engine.query_cache.QueryEncoder` (the model, its lock and the
text / upload / prompt caches) and, optionally, a :class:`retrieval.engine.cases.CaseStore` (stored patch embeddings,
image vectors and original sizes of a bundle's items): with the encoder alone it grounds images (paths, bytes, PIL),
with a store it also grounds bundle cases from their STORED patches (no image forward). Case methods take an item row,
image methods an image; nothing guesses which one a value is. All maths comes from :mod:`retrieval.grounding.maps`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cxr_explorer.retrieval.engine.cases import CaseStore
from cxr_explorer.retrieval.engine.query_cache import ImageInput, QueryEncoder
from cxr_explorer.retrieval.grounding import maps as grounding
from cxr_explorer.retrieval.inputs.preprocess import Preprocessing
from cxr_explorer.retrieval.inputs.text import clean_text, split_sentences
from cxr_explorer.retrieval.models.text_model import TextInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grounding:
    """Phrase grounding of one image: ``map`` [height, width] float32 (NaN outside the model's centre crop),
    ``grid`` [h, w] smoothed patch-level cosine similarities, ``score`` the global image-text cosine similarity.
    """

    map: np.ndarray
    grid: np.ndarray
    score: float
    width: int
    height: int
    text: str


@dataclass(frozen=True)
class SentenceGrounding:
    """One report sentence grounded on an image: ``index`` in the report, its ``grounding``, cosine ``score``."""

    index: int
    text: str
    score: float
    grounding: Grounding


@dataclass(frozen=True)
class _Embedded:
    """What grounding needs of one image: patches [h, w, D] float32, global [D], original (width, height), and the
    bundle row its patches were stored at (None for an upload)."""

    patches: np.ndarray
    global_emb: np.ndarray
    width: int
    height: int
    row: int | None = None


class Grounder:
    """Grounding and zero-shot scores of images (one cached forward each) and, with ``cases``, of bundle items."""

    def __init__(self, encoder: QueryEncoder, cases: CaseStore | None = None) -> None:
        self.encoder = encoder
        self.cases = cases

    @property
    def preprocessing(self) -> Preprocessing:
        """The model's preprocessing (resize, centre crop): where the patch grid lies on the original image."""
        return self.encoder.model.preprocessing

    def _store(self) -> CaseStore:
        if self.cases is None:
            raise ValueError("this grounder has no bundle: ground images, or give it a CaseStore for bundle cases")
        return self.cases

    def _case(self, row: int) -> _Embedded:
        store = self._store()
        width, height = store.original_size(row)
        return _Embedded(store.stored_patches([row])[0], store.image_vector(row), width, height, row)

    def _image(self, image: ImageInput) -> _Embedded:
        enc = self.encoder.encode_upload(image)
        return _Embedded(np.asarray(enc.patches, dtype=np.float32), enc.global_emb, enc.width, enc.height)

    def _ground(self, emb: _Embedded, text: str, interpolation: str) -> Grounding:
        """Grounding of ``text`` from an image's patches and global embedding."""
        t = self.encoder.text_embedding(text)
        t_tensor = torch.from_numpy(np.array(t, dtype=np.float32))
        sim = grounding.patch_similarity(torch.from_numpy(np.array(emb.patches)), t_tensor).numpy()
        if emb.row is not None:
            self._store().check_similarities([emb.row], sim[None])
        grid = grounding.smooth_grid(sim)
        pp = self.preprocessing
        full = grounding.to_image_size(grid, emb.width, emb.height, pp.resize, pp.crop, interpolation)
        score = float(np.clip(np.dot(emb.global_emb.astype(np.float32), t), -1.0, 1.0))
        return Grounding(map=full, grid=grid, score=score, width=emb.width, height=emb.height, text=text)

    # ----- phrases ---------------------------------------------------------------------------------------------------

    def ground_case(self, row: int, text: str, interpolation: str = "bilinear") -> Grounding:
        """Ground ``text`` on bundle item ``row`` from its stored patches; map [height, width] of the original."""
        return self._ground(self._case(row), text, interpolation)

    def ground_image(self, image: ImageInput, text: str, interpolation: str = "bilinear") -> Grounding:
        """Ground ``text`` on an image (bytes, path or PIL); the forward is cached by content."""
        return self._ground(self._image(image), text, interpolation)

    def grid_heatmaps(self, rows: Sequence[int], text: str) -> np.ndarray:
        """Smoothed grid maps [n, h, w] of ``text`` on many bundle items (one matmul, one batched filter)."""
        store = self._store()
        if len(rows) == 0:
            h, w = store.grid_shape
            return np.empty((0, h, w), dtype=np.float32)
        patches = torch.from_numpy(store.stored_patches(rows))
        text_emb = torch.from_numpy(np.array(self.encoder.text_embedding(text), dtype=np.float32))
        sim = grounding.patch_similarity(patches, text_emb).numpy()
        store.check_similarities(rows, sim)
        return grounding.smooth_grid(sim)

    # ----- reports ---------------------------------------------------------------------------------------------------

    def grounded_report_case(self, row: int, report_text: str,
                             interpolation: str = "bilinear") -> list[SentenceGrounding]:
        """Each sentence of ``report_text`` grounded on bundle item ``row`` (see :meth:`_grounded_report`)."""
        emb = self._case(row)
        return self._grounded_report(lambda s: self._ground(emb, s, interpolation), report_text)

    def grounded_report_image(self, image: ImageInput, report_text: str,
                              interpolation: str = "bilinear") -> list[SentenceGrounding]:
        """Each sentence of ``report_text`` grounded on an image (bytes, path or PIL; one cached forward)."""
        emb = self._image(image)
        return self._grounded_report(lambda s: self._ground(emb, s, interpolation), report_text)

    @staticmethod
    def _grounded_report(ground: Callable[[str], Grounding], report_text: str) -> list[SentenceGrounding]:
        """Clean and split the report into sentences (:mod:`retrieval.inputs.text`) and ground each; sentences the text
        model rejects (e.g. only special tokens) are skipped with a log message."""
        out: list[SentenceGrounding] = []
        for i, sentence in enumerate(split_sentences(clean_text(report_text))):
            try:
                g = ground(sentence)
            except TextInputError as exc:
                log.info("skipping sentence %d of the report: %s", i, exc)
                continue
            out.append(SentenceGrounding(index=i, text=sentence, score=g.score, grounding=g))
        return out

    # ----- zero-shot -------------------------------------------------------------------------------------------------

    def zero_shot_case(self, row: int, positive: Sequence[str] = grounding.POSITIVE_PNEUMONIA_PROMPTS,
                       negative: Sequence[str] = grounding.NEGATIVE_PNEUMONIA_PROMPTS) -> grounding.ZeroShotScore:
        """Cosine similarities of bundle item ``row``'s stored image vector with the averaged prompt sets."""
        return self._zero_shot(self._store().image_vector(row), positive, negative)

    def zero_shot_image(self, image: ImageInput, positive: Sequence[str] = grounding.POSITIVE_PNEUMONIA_PROMPTS,
                        negative: Sequence[str] = grounding.NEGATIVE_PNEUMONIA_PROMPTS) -> grounding.ZeroShotScore:
        """Cosine similarities of an image's global embedding (one cached forward) with the averaged prompt sets."""
        return self._zero_shot(self.encoder.image_embedding(image), positive, negative)

    def _zero_shot(self, emb: np.ndarray, positive: Sequence[str], negative: Sequence[str]) -> grounding.ZeroShotScore:
        image = torch.from_numpy(np.array(emb, dtype=np.float32))
        return grounding.zero_shot_margin(image, self.encoder.prompt_embeddings(positive),
                                          self.encoder.prompt_embeddings(negative))

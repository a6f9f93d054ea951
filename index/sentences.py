"""One text-encoder call per distinct normalised text per build: a content-addressed cache of text vectors.

Radiology reports repeat the same sentences ("The heart is normal in size.", "No pneumothorax.") thousands of times,
and a one-sentence report is its own sentence. :class:`TextCache` maps the *normalised* form of a text to its vector
so that each distinct text is encoded once per build: across chunks, after a resume (the cache is re-seeded from the
committed chunks' sentence tables) and across ``--append`` (seeded from the existing bundle's sentences).

Normalisation only merges texts the tokenizer cannot tell apart: whitespace runs collapsed, the trailing ``!?.``
that :class:`retrieval.models.text_model.TextTokenizer` strips anyway, and lower case when the tokenizer lowercases.
Cache entries never go stale: a vector depends only on the text, the model and the precision, which a build may not
change (``index.chunks.SETTINGS_THAT_MATTER``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxr_explorer.retrieval.bundle import Bundle
from cxr_explorer.retrieval.models import VLModel
from cxr_explorer.retrieval.models.text_model import TextInputError
from cxr_explorer.retrieval.store import ChunkStore, Part

log = logging.getLogger(__name__)
#: Most padded tokens (texts x longest text) in one text-encoder batch: long report windows go in small batches,
#: short sentences in batches of up to the build's ``text_batch`` texts.
TOKEN_BUDGET = 4096


def normalise(text: str, lower: bool) -> str:
    """The cache key of ``text``: whitespace collapsed, trailing ``!?.`` dropped, lower-cased if ``lower``."""
    key = " ".join(text.split()).rstrip("!?.").rstrip()
    return key.lower() if lower else key


def token_batches(lengths: Sequence[int], max_rows: int, max_tokens: int = TOKEN_BUDGET) -> list[list[int]]:
    """Indices of ``lengths`` [T] (token counts) in batches, shortest first: at most ``max_rows`` texts and
    texts x longest <= ``max_tokens`` per batch (a text longer than the budget alone), so padding stays small.

    Ordering by characters with a fixed batch of 64 padded covid_chestxray's distinct texts to 1.78x their tokens;
    by tokens within this budget, to 1.11x (``benchmarks.build`` measures the effect on the build)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        if current and (len(current) >= max_rows or (len(current) + 1) * lengths[i] > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


@dataclass
class CacheStats:
    """Texts asked for, and how many of them needed the text encoder (one call per distinct unseen key)."""

    requested: int = 0
    encoded: int = 0
    seeded: int = 0

    @property
    def saved(self) -> int:
        return self.requested - self.encoded


class TextCache:
    """Normalised text -> L2-normalised [D] float32 vector, filled by :meth:`embed` and :meth:`seed`."""

    def __init__(self, dim: int, lower: bool) -> None:
        self.dim = dim
        self.lower = lower
        self._rows: dict[str, int] = {}
        self._vectors = np.zeros((1024, dim), np.float32)
        self.stats = CacheStats()

    @classmethod
    def for_model(cls, model: VLModel) -> TextCache:
        """An empty cache keyed the way ``model``'s tokenizer normalises text."""
        lower = bool(getattr(model.tokenizer.tokenizer, "do_lower_case", False))
        return cls(model.spec.joint_dim, lower)

    def __len__(self) -> int:
        return len(self._rows)

    def key(self, text: str) -> str:
        return normalise(text, self.lower)

    def _put(self, key: str, vector: np.ndarray) -> None:
        if key in self._rows:
            return
        n = len(self._rows)
        if n == len(self._vectors):
            self._vectors = np.concatenate([self._vectors, np.zeros_like(self._vectors)])
        self._vectors[n] = vector
        self._rows[key] = n

    def seed(self, texts: Iterable[str], vectors: np.ndarray) -> None:
        """Add known (text, vector [D]) pairs, e.g. a bundle's sentence table and its sentence vectors [S, D]."""
        before = len(self)
        for text, vec in zip(texts, vectors, strict=True):
            self._put(self.key(str(text)), np.asarray(vec, np.float32))
        self.stats.seeded += len(self) - before

    def seed_parts(self, parts: Iterable[Part]) -> None:
        """Seed from the sentence tables of finished parts (committed chunks, or the bundle being appended to)."""
        for part in parts:
            self.seed(part.sentences["text"].astype(str), np.asarray(part.sentence_emb))

    def _encode(self, model: VLModel, keys: list[str], texts: list[str], batch: int) -> None:
        """Encode ``texts`` (distinct, unseen) in token-length batches (:func:`token_batches`); a refused batch is
        retried one by one."""
        for idx in token_batches([model.tokenizer.count_tokens(t) for t in texts], batch):
            try:
                vecs = model.embed_texts([texts[i] for i in idx]).numpy()
            except TextInputError:
                for i in idx:
                    try:
                        self._put(keys[i], model.embed_texts([texts[i]]).numpy()[0])
                    except TextInputError:
                        pass  # left out of the cache: the caller's ok mask says so
                continue
            for j, i in enumerate(idx):
                self._put(keys[i], vecs[j])
        self.stats.encoded += len(texts)

    def warm(self, model: VLModel, texts: list[str], batch: int) -> None:
        """Encode the unseen distinct texts among ``texts`` now (they count as encoded, not yet as requested)."""
        missing = {k: t for k, t in zip((self.key(t) for t in texts), texts, strict=True) if k not in self._rows}
        if missing:
            self._encode(model, list(missing), list(missing.values()), batch)

    def embed(self, model: VLModel, texts: list[str], batch: int) -> tuple[np.ndarray, np.ndarray]:
        """[T] texts -> ([T, D] L2-normalised vectors, [T] ok mask); only unseen normalised texts reach the model."""
        keys = [self.key(t) for t in texts]
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in self._rows and k not in missing:
                missing[k] = t
        if missing:
            self._encode(model, list(missing), list(missing.values()), batch)
        self.stats.requested += len(texts)
        rows = np.array([self._rows.get(k, -1) for k in keys], np.int64)
        ok = rows >= 0
        out = np.zeros((len(texts), self.dim), np.float32)
        out[ok] = self._vectors[rows[ok]]
        return out, ok


def seeded_cache(model: VLModel, base: Bundle | None, store: ChunkStore) -> TextCache:
    """The build's cache, seeded from the bundle being appended to and from the chunks a previous run committed."""
    cache = TextCache.for_model(model)
    cache.seed_parts(([base.as_part()] if base is not None else []) + store.parts())
    if len(cache):
        log.info("text cache: %d distinct sentences already embedded (bundle and committed chunks)", len(cache))
    return cache


def text_calls(stats: dict[str, float]) -> dict[str, Any]:
    """The manifest's ``build.text_encoder`` record from summed chunk stats: texts, encoder calls, calls saved."""
    asked, encoded = int(stats.get("text_requested", 0)), int(stats.get("text_encoded", 0))
    return {"texts": asked, "encoded": encoded, "saved": asked - encoded,
            "saved_share": round((asked - encoded) / asked, 4) if asked else 0.0,
            "key": "whitespace collapsed, trailing !?. dropped, lower case when the tokenizer lowercases"}

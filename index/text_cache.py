"""One text-encoder call per distinct normalised text per build: a content-addressed cache of text vectors.

Radiology reports repeat the same sentences ("The heart is normal in size.", "No pneumothorax.") thousands of times,
and a one-sentence report is its own sentence. :class:`TextCache` maps the *normalised* form of a text to its vector
so that each distinct text is encoded once per build: across chunks, after a resume (the cache is re-seeded from the
committed chunks' sentence tables) and across ``--append`` (seeded from the existing bundle's sentences).

Normalisation (:func:`retrieval.inputs.text_embedding.normalise`, the key queries share) only merges texts the
tokenizer cannot tell apart: whitespace runs collapsed, the trailing ``!?.`` that
:class:`retrieval.models.text_model.TextTokenizer` strips anyway, and lower case when the tokenizer lowercases.
Cache entries never go stale: a vector depends only on the text, the model and the precision, which a build may not
change (``index.build_state.SETTINGS_THAT_MATTER``).

Memory: the cache holds 24 bytes per distinct text (a 16-byte digest of the key and its row,
:mod:`index.text_cache_store`); its vectors are in a file in the build's work folder (``_build/text-cache.f32``,
rewritten by each run's seeding) and read back by row, so a build's memory does not grow with the corpus's distinct
sentences.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxr_explorer.index.text_cache_store import DigestIndex, VectorFile, digest
from cxr_explorer.retrieval.bundle.reader import Bundle
from cxr_explorer.retrieval.bundle.store import ChunkStore, Part
from cxr_explorer.retrieval.bundle.store.parts import read_rows
from cxr_explorer.retrieval.inputs.text_embedding import normalise
from cxr_explorer.retrieval.models import VLModel
from cxr_explorer.retrieval.models.text_model import TextInputError

log = logging.getLogger(__name__)
#: Most tokens (rows x tokens per text) in one text-encoder batch: long report windows go in small batches, short
#: sentences in batches of up to the build's ``text_batch`` texts.
TOKEN_BUDGET = 4096
SEED_BLOCK = 65_536  # sentence rows per block when seeding from a part (32 MiB of vectors at D = 128)


def batch_rows(length: int, max_rows: int, max_tokens: int = TOKEN_BUDGET) -> int:
    """The rows of every encoder batch of ``length``-token texts: ``max_rows``, fewer for long texts so that rows x
    length <= ``max_tokens`` (at least 1)."""
    return max(1, min(max_rows, max_tokens // max(1, length)))


def token_batches(lengths: Sequence[int], max_rows: int, max_tokens: int = TOKEN_BUDGET
                  ) -> list[tuple[list[int], int]]:
    """Indices of ``lengths`` [T] (token counts) in batches decided by content alone: each batch holds texts of one
    length L, at most :func:`batch_rows` ``(L)`` of them, and is to be run with exactly that many rows (the rest
    filler), as ``(indices, rows)``; shortest first.

    So every text reaches the encoder in a batch of the same shape, [rows(L), L], with no padding tokens, whatever
    else is encoded with it: its vector does not depend on the chunk size, a resume point, a shard split or the
    worker count (kernels give a row the same bits for the same shape). Grouping by exact length also keeps padding
    at zero; the filler rows cost at most rows(L) - 1 per distinct length per call."""
    by_length: dict[int, list[int]] = {}
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        by_length.setdefault(int(lengths[i]), []).append(i)
    batches: list[tuple[list[int], int]] = []
    for length, idx in by_length.items():
        rows = batch_rows(length, max_rows, max_tokens)
        batches += [(idx[start:start + rows], rows) for start in range(0, len(idx), rows)]
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
    """Normalised text -> L2-normalised [D] float32 vector, filled by :meth:`embed` and :meth:`seed`.

    Keyed by the 16-byte digest of the normalised text (:class:`index.text_cache_store.DigestIndex`, 24 bytes per
    distinct text); the vectors live in an append-only file (:class:`index.text_cache_store.VectorFile`: ``path``, e.g.
    in the build's work folder, or an anonymous temporary file), read back by row. Close it (or use it in ``with``)."""

    def __init__(self, dim: int, lower: bool, path: Path | None = None) -> None:
        self.dim = dim
        self.lower = lower
        self._index = DigestIndex()
        self._vectors = VectorFile(dim, path)
        self.stats = CacheStats()

    @classmethod
    def for_model(cls, model: VLModel, path: Path | None = None) -> TextCache:
        """An empty cache keyed the way ``model``'s tokenizer normalises text (vectors in ``path``, see above)."""
        lower = bool(getattr(model.tokenizer.tokenizer, "do_lower_case", False))
        return cls(model.spec.joint_dim, lower, path)

    def __len__(self) -> int:
        return len(self._index)

    def __enter__(self) -> TextCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close (and remove) the vector file."""
        self._vectors.close()

    def key(self, text: str) -> bytes:
        """The cache key of ``text``: the 16-byte digest of its normalised form (:func:`normalise`)."""
        return digest(normalise(text, self.lower))

    def _put(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Add [K] keys with their [K, D] vectors; keys already present (or repeated) keep their first vector."""
        rows = self._index.lookup(keys)
        fresh: dict[bytes, int] = {}
        for i in np.flatnonzero(rows < 0).tolist():
            fresh.setdefault(keys[i], i)
        if not fresh:
            return
        first = self._vectors.append(np.asarray(vectors, np.float32)[list(fresh.values())])
        for n, key in enumerate(fresh):
            self._index.add(key, first + n)

    def seed(self, texts: Iterable[str], vectors: np.ndarray) -> None:
        """Add known (text, vector [D]) pairs, e.g. a bundle's sentence table and its sentence vectors [S, D]."""
        before = len(self)
        self._put([self.key(str(t)) for t in texts], vectors)
        self.stats.seeded += len(self) - before

    def seed_parts(self, parts: Iterable[Part]) -> None:
        """Seed from the sentence tables of finished parts (committed chunks, or the bundle being appended to); the
        vectors are read ``SEED_BLOCK`` rows at a time (a memory-mapped part is read, not mapped)."""
        for part in parts:
            texts = part.sentences["text"].astype(str).tolist()
            for start in range(0, len(texts), SEED_BLOCK):
                self.seed(texts[start:start + SEED_BLOCK], read_rows(part.sentence_emb, start, SEED_BLOCK))

    def _encode(self, model: VLModel, keys: list[bytes], texts: list[str], batch: int) -> None:
        """Encode ``texts`` (distinct, unseen) in content-decided batches (:func:`token_batches`: one token length and
        one row count per length, filled up with copies of its first text); a refused batch is retried text by text
        in the same shape."""
        for idx, rows in token_batches([model.tokenizer.count_tokens(t) for t in texts], batch):
            chosen = [texts[i] for i in idx]
            try:
                vecs = _embed_rows(model, chosen, rows)
            except TextInputError:
                for i in idx:
                    try:
                        self._put([keys[i]], _embed_rows(model, [texts[i]], rows))
                    except TextInputError:
                        pass  # left out of the cache: the caller's ok mask says so
                continue
            self._put([keys[i] for i in idx], vecs)
        self.stats.encoded += len(texts)

    def _missing(self, keys: list[bytes], texts: list[str]) -> dict[bytes, str]:
        """The distinct keys among ``keys`` the cache lacks, each with its first text."""
        missing: dict[bytes, str] = {}
        for i in np.flatnonzero(self._index.lookup(keys) < 0).tolist():
            missing.setdefault(keys[i], texts[i])
        return missing

    def warm(self, model: VLModel, texts: list[str], batch: int) -> None:
        """Encode the unseen distinct texts among ``texts`` now (they count as encoded, not yet as requested)."""
        missing = self._missing([self.key(t) for t in texts], texts)
        if missing:
            self._encode(model, list(missing), list(missing.values()), batch)

    def embed(self, model: VLModel, texts: list[str], batch: int) -> tuple[np.ndarray, np.ndarray]:
        """[T] texts -> ([T, D] L2-normalised vectors, [T] ok mask); only unseen normalised texts reach the model."""
        keys = [self.key(t) for t in texts]
        missing = self._missing(keys, texts)
        if missing:
            self._encode(model, list(missing), list(missing.values()), batch)
        self.stats.requested += len(texts)
        rows = self._index.lookup(keys)
        ok = rows >= 0
        out = np.zeros((len(texts), self.dim), np.float32)
        out[ok] = self._vectors.read(rows[ok])
        return out, ok


def _embed_rows(model: VLModel, texts: list[str], rows: int) -> np.ndarray:
    """[K] texts of one token length (K <= ``rows``) -> [K, D], encoded as a batch of exactly ``rows`` texts."""
    return model.embed_texts(texts + [texts[0]] * (rows - len(texts))).numpy()[:len(texts)]


def seeded_cache(model: VLModel, base: Bundle | None, store: ChunkStore, path: Path | None = None) -> TextCache:
    """The build's cache (vectors in ``path``), seeded from the bundle being appended to and from the chunks a
    previous run committed."""
    cache = TextCache.for_model(model, path)
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

"""How any text becomes one vector, for the offline job, the app, the CLI and the API alike.

1. :func:`encoder_text`: whitespace runs (tabs, newlines, double spaces) become one space and blank ends go, as the
   job's report cleaning does; without it a query ending in ``". "`` would keep the full stop that the tokenizer
   strips only at the very end.
2. :func:`plan_text`: a text over the encoder's limit is split into windows of consecutive sentences
   (``retrieval.inputs.text.LONG_REPORT_STRATEGY``); a text that fits is its one window.
3. Each window is embedded and L2-normalised; :func:`mean_renormalised` combines them (and averages zero-shot prompt
   sets, whose unnormalised embeddings are averaged before normalising).

:func:`normalise` is the key under which texts that embed alike share one encoder call (the job's text cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cxr_explorer.retrieval.inputs.text import fit_sentences, pack_windows, split_sentences

__all__ = ["TextPlan", "embed_windows", "encoder_text", "mean_renormalised", "normalise", "plan_text"]


def encoder_text(text: str) -> str:
    """``text`` as the encoder is given it: whitespace runs (tabs, newlines, ...) one space, no blank ends."""
    return " ".join(text.split())


def normalise(text: str, lower: bool) -> str:
    """The key of texts that embed alike: :func:`encoder_text`, trailing ``!?.`` dropped, lower-cased if
    ``lower`` (the tokenizer lowercases)."""
    key = encoder_text(text).rstrip("!?.").rstrip()
    return key.lower() if lower else key


@dataclass(frozen=True)
class TextPlan:
    """How a text is embedded: its ``sentences`` and the ``windows`` embedded (``[text]`` when it fits), both in
    encoder form."""

    sentences: list[str]
    windows: list[str]


def plan_text(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> TextPlan:
    """(sentences, windows) of :func:`encoder_text` ``(text)``: windows is ``[text]`` unless it is over
    ``max_tokens`` (incl. specials)."""
    text = encoder_text(text)
    sentences = split_sentences(text)
    if count_tokens(text) <= max_tokens:
        return TextPlan(sentences, [text])
    sentences = fit_sentences(sentences, count_tokens, max_tokens)
    return TextPlan(sentences, pack_windows(sentences, count_tokens, max_tokens))


def mean_renormalised(vectors: np.ndarray) -> np.ndarray:
    """[N, D] vectors (N >= 1; window embeddings, or unnormalised prompt embeddings) -> their mean, L2-normalised:
    [D] float32."""
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] == 0:
        raise ValueError(f"expected vectors of shape [N, D] with N >= 1, got {vecs.shape}")
    mean = vecs.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def embed_windows(windows: Sequence[str], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """[W] windows of a :class:`TextPlan` -> one L2-normalised [D] float32 vector: :func:`mean_renormalised` of
    ``embed(windows)`` ([W, D] L2-normalised rows)."""
    return mean_renormalised(embed(list(windows)))

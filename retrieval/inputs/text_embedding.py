"""Any text is a query: text longer than the text encoder's limit is embedded the way the offline job embeds long
reports (``retrieval.inputs.text.LONG_REPORT_STRATEGY``): consecutive sentences packed into windows of at most the
limit,
each window embedded and L2-normalised, the mean re-normalised. One function for the job, the app, the CLI and the API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from cxr_explorer.retrieval.inputs.text import fit_sentences, pack_windows, split_sentences

__all__ = ["TextPlan", "embed_windows", "plan_text"]


@dataclass(frozen=True)
class TextPlan:
    """How a text is embedded: its ``sentences`` and the ``windows`` embedded (``[text]`` when it fits)."""

    sentences: list[str]
    windows: list[str]


def plan_text(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> TextPlan:
    """(sentences, windows) of ``text``: windows is ``[text]`` unless it is over ``max_tokens`` (incl. specials)."""
    sentences = split_sentences(text)
    if count_tokens(text) <= max_tokens:
        return TextPlan(sentences, [text])
    sentences = fit_sentences(sentences, count_tokens, max_tokens)
    return TextPlan(sentences, pack_windows(sentences, count_tokens, max_tokens))


def embed_windows(windows: Sequence[str], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """[W] windows -> one L2-normalised [D] float32 vector: the mean of the windows' normalised embeddings
    (``embed`` maps texts to [W, D] L2-normalised rows), re-normalised."""
    vecs = np.asarray(embed(list(windows)), dtype=np.float32)
    mean = vecs.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

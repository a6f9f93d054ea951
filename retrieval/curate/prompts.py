"""Zero-shot prompts per label for the label check: read from a JSON file, embedded with the bundle's model.

File format: ``{"Pneumonia": {"positive": ["Findings suggesting pneumonia"], "negative": ["No evidence of
pneumonia"]}, ...}``; each set is embedded, averaged before normalisation (as the reference does) and normalised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxr_explorer.retrieval.inputs.text_embedding import mean_renormalised


class PromptFileError(ValueError):
    """A prompts file that cannot be read or does not have the documented shape."""


@dataclass(frozen=True)
class LabelPrompts:
    """Positive and negative prompt texts of one label."""

    label: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]


def read_prompts(path: str | os.PathLike[str]) -> list[LabelPrompts]:
    """Parse a prompts JSON file; PromptFileError names the problem."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PromptFileError(f"cannot read prompts file {p}: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise PromptFileError(f"prompts file {p} must be a JSON object {{label: {{positive: [...], negative: "
                              "[...]}}}}")
    out = []
    for label, sets in raw.items():
        if not isinstance(sets, dict):
            raise PromptFileError(f"prompts file {p}: label {label!r} needs an object with positive and negative")
        pos, neg = sets.get("positive"), sets.get("negative")
        for name, value in (("positive", pos), ("negative", neg)):
            if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
                raise PromptFileError(f"prompts file {p}: label {label!r} needs a non-empty list of texts "
                                      f"under {name!r}")
        out.append(LabelPrompts(str(label), tuple(pos), tuple(neg)))  # type: ignore[arg-type]
    return out


def embed_prompts(prompts: Sequence[LabelPrompts], embed: Callable[[list[str]], np.ndarray]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{label: (positive [D], negative [D])}: ``embed(texts)`` -> unnormalised [P, D], averaged, L2-normalised."""
    return {p.label: (mean_renormalised(embed(list(p.positive))), mean_renormalised(embed(list(p.negative))))
            for p in prompts}

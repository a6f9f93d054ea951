"""Report text: cleaning, special-token neutralising, radiology-aware sentence splitting, fitting to 512 tokens.

Nothing here drops text: cleaning removes only markup and invisible characters, and text too long for the encoder is
split into consecutive pieces (see :func:`fit_sentences` and :func:`pack_windows`), never truncated.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CLEANING", "LONG_REPORT_STRATEGY", "clean_text", "fit_sentences", "join_sections", "pack_windows",
           "split_sentences"]

#: What :func:`clean_text` does, recorded in bundle manifests.
CLEANING: dict[str, Any] = {
    "steps": ["html-unescape", "unicode-NFKC", "strip-markup-tags", "drop-control-and-format-chars",
              "neutralise-special-tokens", "collapse-whitespace"],
    "special_tokens": "[SEP] [CLS] [PAD] [UNK] [MASK] (any case) -> (SEP) (CLS) (PAD) (UNK) (MASK)",
}
#: How a report longer than the text encoder's limit is embedded, recorded in bundle manifests.
LONG_REPORT_STRATEGY = ("sentence-chunks-mean: consecutive sentences packed into windows of <= max tokens, each window "
                        "embedded and L2-normalised, the mean re-normalised; over-long sentences split at words")

_TAG = re.compile(r"<\s*/?\s*[A-Za-z][^<>]{0,200}>|<!--.*?-->", re.S)
_SPECIAL = re.compile(r"\[\s*(SEP|CLS|PAD|UNK|MASK)\s*\]", re.I)
_SPACE = re.compile(r"\s+")
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*\s+")
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof e.g i.e eg ie vs cf approx resp incl st mt ca al et viz jan feb mar apr jun jul aug sep sept "
    "oct nov dec a.m p.m".split()
)
_NUMBER_ABBREVIATIONS = frozenset("no nos fig figs vol ref".split())  # "No. 5", "Fig. 2"
_LIST_MARKER = re.compile(r"^(\d{1,2}|[a-zA-Z])[.)]$")


#: C0/C1 control characters: whitespace among them becomes a space, the rest is dropped (all are category Cc).
_CONTROLS = {c: (" " if chr(c).isspace() else None) for c in (*range(32), *range(127, 160))}


def _drop_invisible(s: str) -> str:
    """Whitespace -> " "; other control, format and unassigned characters (Unicode category C) dropped."""
    s = s.translate(_CONTROLS)
    if s.isprintable():  # the common case: nothing else to drop, so no per-character loop
        return s
    return "".join(" " if ch.isspace() else ch for ch in s if ch.isspace() or unicodedata.category(ch)[0] != "C")


def clean_text(text: object) -> str:
    """Any cell value -> clean one-line text ("" for None/NaN); see :data:`CLEANING`."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    s = unicodedata.normalize("NFKC", html.unescape(str(text)))
    s = _TAG.sub(" ", s)
    s = _drop_invisible(s)
    s = _SPECIAL.sub(lambda m: f"({m.group(1).upper()})", s)
    return _SPACE.sub(" ", s).strip()


def join_sections(*sections: object) -> str:
    """Clean and join report sections (e.g. findings, impression) with a sentence break between them."""
    parts = [clean_text(s) for s in sections]
    parts = [p for p in parts if p]
    out = ""
    for p in parts:
        if out and out[-1] not in ".!?":
            out += "."
        out = f"{out} {p}" if out else p
    return out


def _is_false_boundary(before: str, punct: str, after: str) -> bool:
    """True when the punctuation ending ``before`` is an abbreviation, an initial or a list marker."""
    if not punct.startswith("."):
        return False
    words = before.split()
    if not words:
        return True
    last = words[-1].lower().lstrip("([\"'")
    if last in _ABBREVIATIONS or (last in _NUMBER_ABBREVIATIONS and after[:1].isdigit()):
        return True
    if len(last) == 1 and last.isalpha() and words[-1][-1:].isupper():
        return True  # an initial: "J. Smith"
    return len(words) == 1 and _LIST_MARKER.match(words[0] + ".") is not None


def split_sentences(text: str) -> list[str]:
    """Split cleaned text into sentences; not on "Dr.", "e.g.", "No. 5", initials, decimals or list numbers."""
    text = _SPACE.sub(" ", text).strip()
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        piece = text[start:m.start()]
        if _is_false_boundary(piece, m.group(0).strip(), text[end:]):
            continue
        out.append(text[start:end].strip())
        start = end
    if start < len(text):
        out.append(text[start:].strip())
    return [s for s in out if s]


def _split_long(sentence: str, count: Callable[[str], int], budget: int) -> list[str]:
    """Split one sentence into consecutive word windows of at most ``budget`` content tokens."""
    pieces: list[str] = []
    words: list[str] = []
    used = 0
    for word in sentence.split(" "):
        n = count(word) - 2
        if n > budget:  # a single enormous "word": cut it into character slices
            pieces.extend(_split_long(" ".join(word[i:i + 50] for i in range(0, len(word), 50)), count, budget))
            continue
        if words and used + n > budget:
            pieces.append(" ".join(words))
            words, used = [], 0
        words.append(word)
        used += n
    if words:
        pieces.append(" ".join(words))
    return pieces


def fit_sentences(sentences: Sequence[str], count_tokens: Callable[[str], int], max_tokens: int = 512) -> list[str]:
    """Sentences with every one over ``max_tokens`` (incl. [CLS]/[SEP]) split at words; nothing is dropped."""
    out: list[str] = []
    for s in sentences:
        out.extend([s] if count_tokens(s) <= max_tokens else _split_long(s, count_tokens, max_tokens - 2))
    return out


def pack_windows(sentences: Sequence[str], count_tokens: Callable[[str], int], max_tokens: int = 512) -> list[str]:
    """Pack consecutive sentences (each already fitting) into as few windows of <= ``max_tokens`` as possible."""
    windows: list[str] = []
    current = ""
    for s in sentences:
        candidate = f"{current} {s}" if current else s
        if current and count_tokens(candidate) > max_tokens:
            windows.append(current)
            candidate = s
        current = candidate
    if current:
        windows.append(current)
    return windows

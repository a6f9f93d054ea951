"""Tests for retrieval.inputs.text: cleaning, special tokens, sentence splitting, fitting to the token limit."""

from __future__ import annotations

import html
import math
import re

import pytest

from cxr_explorer.retrieval.inputs.text import clean_text, fit_sentences, join_sections, pack_windows, split_sentences


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word plus [CLS] and [SEP]."""
    return len(text.split()) + 2


@pytest.mark.parametrize(("raw", "clean"), [
    (None, ""),
    (math.nan, ""),
    ("  No\teffusion.\n\nHeart  normal. ", "No effusion. Heart normal."),
    ("<b>Findings</b>: clear<br/>lungs", "Findings : clear lungs"),
    ("&lt;i&gt;Clear&lt;/i&gt; &amp; stable", "Clear & stable"),
    ("Lungs [SEP] clear [cls] x [ MASK ] [PAD][UNK]", "Lungs (SEP) clear (CLS) x (MASK) (PAD)(UNK)"),
    ("［SEP］ fullwidth", "(SEP) fullwidth"),
    ("[S\u200bEP] hidden", "(SEP) hidden"),
    ("ﬁbrosis \x00\x07 noted", "fibrosis noted"),
    ("size < 5 mm", "size < 5 mm"),
    ("émphysème 😀", "émphysème 😀"),
])
def test_clean_text(raw: object, clean: str) -> None:
    assert clean_text(raw) == clean


@pytest.mark.parametrize("last", [160, 12_000])  # controls only (the translate path), then most of the BMP
def test_clean_text_drops_every_invisible_character_and_keeps_the_rest(last: int) -> None:
    """Code points 1..last-1 (controls, format marks, odd spaces, unassigned ones) in one cell: whitespace becomes
    one space, category C goes, everything else stays."""
    import unicodedata

    cell = "x".join(chr(c) for c in range(1, last) if not 0xD800 <= c <= 0xDFFF)
    expected = "".join(" " if ch.isspace() else ch for ch in unicodedata.normalize("NFKC", html.unescape(cell))
                       if ch.isspace() or unicodedata.category(ch)[0] != "C")
    expected = re.sub(r"\s+", " ", re.sub(r"<\s*/?\s*[A-Za-z][^<>]{0,200}>|<!--.*?-->", " ", expected, flags=re.S))
    assert clean_text(cell) == expected.strip()
    assert clean_text("a\u00a0b\u2028c\x85d\u200ee\x1ff") == "a b c de f"


def test_join_sections() -> None:
    assert join_sections("No effusion", "Normal chest") == "No effusion. Normal chest"
    assert join_sections("No effusion.", None) == "No effusion."
    assert join_sections(math.nan, "  Normal. ") == "Normal."
    assert join_sections("", None) == ""


@pytest.mark.parametrize(("text", "expected"), [
    ("No effusion. Heart is normal.", ["No effusion.", "Heart is normal."]),
    ("Seen by Dr. Smith today. Stable.", ["Seen by Dr. Smith today.", "Stable."]),
    ("Nodule of 2.5 cm in the RUL. No change.", ["Nodule of 2.5 cm in the RUL.", "No change."]),
    ("Opacities, e.g. in the bases, persist. Also i.e. bilateral.",
     ["Opacities, e.g. in the bases, persist.", "Also i.e. bilateral."]),
    ("See Fig. 2 for detail. Bed No. 4 patient.", ["See Fig. 2 for detail.", "Bed No. 4 patient."]),
    ("1. Lungs are clear. 2. No effusion.", ["1. Lungs are clear.", "2. No effusion."]),
    ("Effusion? Yes! Large.", ["Effusion?", "Yes!", "Large."]),
    ("lowercase report. still split here.", ["lowercase report.", "still split here."]),
    ("Reviewed with J. Doe. Fine.", ["Reviewed with J. Doe.", "Fine."]),
    ("No pneumothorax (see prior.) Stable.", ["No pneumothorax (see prior.)", "Stable."]),
    ("", []),
    ("No terminal punctuation", ["No terminal punctuation"]),
])
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_fit_sentences_splits_only_long_ones() -> None:
    long = " ".join(f"w{i}" for i in range(25))
    out = fit_sentences(["short one.", long], words, max_tokens=10)
    assert out[0] == "short one."
    assert all(words(s) <= 10 for s in out)
    assert " ".join(out[1:]) == long  # nothing dropped, order kept


def test_fit_sentences_giant_word() -> None:
    out = fit_sentences(["x" * 400], lambda s: sum(math.ceil(len(w) / 10) for w in s.split()) + 2, max_tokens=12)
    assert "".join(s.replace(" ", "") for s in out) == "x" * 400


def test_pack_windows() -> None:
    sents = [f"s{i} a b." for i in range(10)]  # 3 words each -> 5 tokens alone
    windows = pack_windows(sents, words, max_tokens=11)
    assert all(words(w) <= 11 for w in windows)
    assert " ".join(windows) == " ".join(sents)
    assert len(windows) == 4
    assert pack_windows([], words) == []

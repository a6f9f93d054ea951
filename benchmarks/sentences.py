"""Distinct-sentence share of real report corpora and the text-encoder calls the build's sentence cache saves.

For each corpus (``../shared/data/iu_xray_reports``, ``covid_chestxray``) the reports are cleaned and planned
exactly as the index job does (``findings`` + ``impression`` joined, :func:`index.embed._plan`: the report or its
windows, plus every sentence), then counted three ways: texts asked for (no dedupe), encoder calls with a
per-chunk exact-text dedupe (chunks of 1,024 items), and encoder calls with :class:`index.text_cache.TextCache`
(each distinct normalised text once per build). Needs only the tokenizer, no model forward.

    .venv/bin/python -m benchmarks.run --only sentences
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cxr_explorer.index.embed import _plan
from cxr_explorer.retrieval.inputs.text import join_sections
from cxr_explorer.retrieval.inputs.text_embedding import normalise
from cxr_explorer.retrieval.models.text_model import TextTokenizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPORA = {"iu_xray_reports": DATA / "iu_xray_reports" / "reports.csv",
           "covid_chestxray": DATA / "covid_chestxray" / "reports.csv"}
CHUNK = 1024


@dataclass
class _Tok:
    """The one attribute :func:`index.embed._plan` reads from a model."""

    tokenizer: TextTokenizer


def corpus_reports(csv: Path) -> list[str]:
    """Cleaned report texts of a corpus CSV (findings + impression, as the job joins them; empty ones dropped)."""
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    cols = [c for c in ("findings", "impression") if c in df.columns]
    texts = [join_sections(*row) for row in df[cols].itertuples(index=False)]
    return [t for t in texts if t]


def count_calls(reports: list[str], tok: TextTokenizer) -> dict[str, Any]:
    """Texts asked for, per-chunk exact-dedupe calls and per-build normalised-dedupe calls over ``reports``."""
    model = _Tok(tok)
    lower = bool(getattr(tok.tokenizer, "do_lower_case", False))
    asked = per_chunk = 0
    sentences_total = 0
    distinct_sentences: set[str] = set()
    seen: set[str] = set()
    one_sentence = 0
    for start in range(0, len(reports), CHUNK):
        chunk_texts: list[str] = []
        for report in reports[start:start + CHUNK]:
            sentences, windows = _plan(model, report)  # type: ignore[arg-type]
            chunk_texts += windows + sentences
            sentences_total += len(sentences)
            distinct_sentences.update(normalise(s, lower) for s in sentences)
            one_sentence += windows == sentences
        asked += len(chunk_texts)
        per_chunk += len(set(chunk_texts))
        seen.update(normalise(t, lower) for t in chunk_texts)
    return {"reports": len(reports), "sentences": sentences_total, "distinct_sentences": len(distinct_sentences),
            "distinct_sentence_share": round(len(distinct_sentences) / max(sentences_total, 1), 4),
            "one_sentence_reports": one_sentence, "texts_asked": asked, "calls_per_chunk_dedupe": per_chunk,
            "calls_per_build_cache": len(seen), "calls_saved_vs_no_dedupe": asked - len(seen),
            "calls_saved_vs_per_chunk": per_chunk - len(seen),
            "call_ratio_per_chunk_over_cache": round(per_chunk / max(len(seen), 1), 2)}


def run_sentences(tok: TextTokenizer, limit: int | None = None) -> dict[str, Any]:
    """Counts per corpus present under ../shared/data (first ``limit`` reports; an absent corpus says so)."""
    out: dict[str, Any] = {"chunk_size": CHUNK, "method": "cxr_explorer.index.embed._plan + index.text_cache.normalise"}
    for name, csv in CORPORA.items():
        out[name] = count_calls(corpus_reports(csv)[:limit], tok) if csv.is_file() else {"status": f"absent: {csv}"}
    return out

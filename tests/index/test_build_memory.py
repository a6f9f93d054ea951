"""What a build holds while it finalises: not the corpus listing, nor the text cache's vectors."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from cxr_explorer.index import runner
from cxr_explorer.retrieval.bundle.store import BuildArea, names
from tests.helpers.corpora import write_good_csv


def test_finalisation_holds_no_corpus_item_and_the_cache_file_is_gone(tmp_path: Path, build,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    listings: list[weakref.ref[Any]] = []
    seen: dict[str, Any] = {}
    read, finalise = runner.read_corpus, runner.finalise_build

    def reading(*args: Any, **kw: Any) -> Any:
        corpus = read(*args, **kw)
        listings.append(weakref.ref(corpus.items))
        return corpus

    def finalising(area: BuildArea, *args: Any, **kw: Any) -> Any:
        gc.collect()
        seen["alive"] = sum(ref() is not None for ref in listings)
        seen["cache_file"] = (area.folder / names.TEXT_CACHE).exists()
        return finalise(area, *args, **kw)

    monkeypatch.setattr(runner, "read_corpus", reading)
    monkeypatch.setattr(runner, "finalise_build", finalising)
    summary = build(write_good_csv(tmp_path, 5), tmp_path / "b", chunk_size=2)
    assert summary.count == 5 and len(listings) == 1
    assert seen == {"alive": 0, "cache_file": False}  # listing dropped after embedding; cache closed and removed

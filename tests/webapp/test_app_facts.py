"""One source per fact: the app's result pages stay within the engine's MAX_K, and the About page's model cards come
from the model registry."""

from __future__ import annotations

import pytest

from cxr_explorer.retrieval.engine.limits import MAX_K, MAX_PAGE_SIZE, last_page
from cxr_explorer.retrieval.models.cards import released_cards
from cxr_explorer.retrieval.models.registry import REGISTRY


@pytest.mark.parametrize("size", [1, 7, 12, MAX_PAGE_SIZE])
def test_every_page_up_to_the_last_fits_in_max_k(size: int) -> None:
    last = last_page(size)
    assert last * size <= MAX_K < (last + 1) * size


def test_page_size_cap_is_below_the_engine_cap() -> None:
    assert 1 <= MAX_PAGE_SIZE <= MAX_K


def test_model_cards_follow_the_registry() -> None:
    cards = released_cards()
    assert set(cards) == {name for name, spec in REGISTRY.items() if spec.is_real}
    for name, card in cards.items():
        spec = REGISTRY[name]
        assert card["Repository"] == spec.hf_repo and card["Revision"] == spec.revision
        assert card["Preprocessing"] == f"resize {spec.resize}, centre crop {spec.crop}"
        assert card["Image weights MD5"] == spec.image_md5 and card["Paper"]
    assert cards["biovil-t"]["Image encoder"].startswith("ResNet-50 + temporal ViT pooler")

"""Fixtures shared by the whole suite (plain helpers live in ``tests/helpers/``; the browser tests add their own in
``tests/e2e/conftest.py``): the tiny-random model, an in-process build with it, and the small engine bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cxr_explorer.retrieval.models import VLModel
from tests.helpers.bundles import ENGINE_CASES, model_bundle
from tests.helpers.synthetic import tiny_model as load_tiny_model


@pytest.fixture(scope="session")
def tiny_model() -> VLModel:
    """The synthetic ``tiny-random`` model (NOT a real model), loaded once per session."""
    return load_tiny_model()


@pytest.fixture
def build(tiny_model: VLModel) -> Callable[..., Any]:
    """Run the index job in-process with the shared tiny model: ``build(corpus, out, **BuildConfig fields)``; no
    worker processes, quiet progress unless given."""
    from cxr_explorer.index.runner import BuildConfig, run_build

    def _build(corpus: Path, out: Path, **kw: Any) -> Any:
        kw.setdefault("workers", 0)
        kw.setdefault("threads", 1)
        kw.setdefault("progress", "none")
        return run_build(BuildConfig(corpus=corpus, out=out, model="tiny-random", **kw), model=tiny_model)

    return _build


@pytest.fixture(scope="session")
def engine_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_model: VLModel) -> Path:
    """The small engine bundle (:data:`tests.helpers.bundles.ENGINE_CASES`: 7 cases, planted image vectors), built once;
    tests only read it."""
    return model_bundle(tmp_path_factory.mktemp("engine"), tiny_model, ENGINE_CASES)

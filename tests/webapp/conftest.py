"""Fixtures of the app's AppTests: each test module gets a small tiny-random bundle of its own (modules write review
files and collections beside it), and ``env`` points the app at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cxr_explorer.webapp.settings import BUNDLES_ENV
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.synthetic import tiny_model


@pytest.fixture(scope="module")
def bundle_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_bundle(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]), tiny_model(), APP_CASES)


@pytest.fixture()
def env(bundle_dir: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BUNDLES_ENV, str(bundle_dir))
        yield bundle_dir

"""The app tells the user when a newer version of the open bundle was installed, and loads it on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_explorer.retrieval.bundle import store
from cxr_explorer.webapp.settings import BUNDLES_ENV
from cxr_explorer.webapp.version_notice import NOTICE
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.paths import APP_SCRIPT
from tests.helpers.synthetic import tiny_model

APP = str(APP_SCRIPT)


def _notices(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.sidebar.info if str(e.value) == NOTICE]


def _serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, AppTest]:
    """A fresh bundle (version 1) and the app run once on it."""
    bundle = model_bundle(tmp_path, tiny_model(), APP_CASES)
    monkeypatch.setenv(BUNDLES_ENV, str(bundle))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return bundle, at


@pytest.mark.slow  # writes the bundle twice and reruns the app
def test_newer_version_notice_and_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle, at = _serve(tmp_path, monkeypatch)
    assert not at.exception and _notices(at) == []
    model_bundle(tmp_path, tiny_model(), APP_CASES)  # version 2 while the app holds version 1
    assert store.current_version(bundle) == 2
    at.run()
    assert _notices(at) == [NOTICE]
    at.sidebar.button(key="reload_bundle").click().run()
    assert not at.exception and _notices(at) == []


def _legend(at: AppTest) -> str:
    return " ".join(str(el.proto.body) for el in at.get("html"))


@pytest.mark.slow  # writes the bundle twice and reruns the app
def test_the_map_shows_the_new_version_after_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cache derived from the engine follows the reload (the Map's points are cached resources)."""
    bundle, at = _serve(tmp_path, monkeypatch)
    at.switch_page("views/map/page.py").run()
    at.selectbox(key="m_colour").set_value("labels").run()
    assert not at.exception and "Zeta finding" not in _legend(at)
    model_bundle(tmp_path, tiny_model(), APP_CASES, labels=["Zeta finding"] * 8)  # version 2, new labels
    at.run()
    at.sidebar.button(key="reload_bundle").click().run()
    assert not at.exception and "Zeta finding" in _legend(at)

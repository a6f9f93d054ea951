"""The app tells the user when a newer version of the open bundle was installed, and loads it on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_explorer.retrieval import store
from cxr_explorer.webapp.settings import BUNDLES_ENV
from cxr_explorer.webapp.version_notice import NOTICE
from tests.webapp import synthetic_bundle

APP = str(Path(__file__).resolve().parents[2] / "webapp" / "app.py")


def _notices(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.sidebar.info if str(e.value) == NOTICE]


def test_newer_version_notice_and_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = synthetic_bundle.build(tmp_path)
    monkeypatch.setenv(BUNDLES_ENV, str(bundle))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception and _notices(at) == []
    synthetic_bundle.build(tmp_path)  # version 2 while the app holds version 1
    assert store.current_version(bundle) == 2
    at.run()
    assert _notices(at) == [NOTICE]
    at.sidebar.button(key="reload_bundle").click().run()
    assert not at.exception and _notices(at) == []

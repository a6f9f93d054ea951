"""The app on a damaged bundle: one in-page line naming the damage, never a traceback, never a drawn map."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_explorer.retrieval.bundle.store import names
from cxr_explorer.webapp.settings import BUNDLES_ENV
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.damage import current_folder, flip_bit, flip_patch_row
from tests.helpers.paths import APP_SCRIPT
from tests.helpers.synthetic import tiny_model

TIMEOUT = 120


@pytest.fixture(scope="module")
def clean_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_bundle(tmp_path_factory.mktemp("damaged-app"), tiny_model(), APP_CASES)


def run_app(bundle: Path, page: str | None = None) -> AppTest:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BUNDLES_ENV, str(bundle))
        at = AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT).run()
        if page:
            at.switch_page(f"views/{page}/page.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at: AppTest) -> list[str]:
    """The error lines as read (without the Markdown escapes of st.error)."""
    return [str(e.value).replace("\\", "") for e in at.error]


def test_a_lost_current_is_one_line_and_a_damaged_patch_row_draws_no_map(clean_bundle: Path, tmp_path: Path
                                                                          ) -> None:
    lost = Path(shutil.copytree(clean_bundle, tmp_path / "lost"))
    (lost / names.CURRENT).unlink()
    at = run_app(lost)
    assert any("Cannot open bundle" in e and "damaged bundle" in e and "CURRENT, missing" in e for e in errors(at))
    flipped = Path(shutil.copytree(clean_bundle, tmp_path / "flipped"))
    flip_patch_row(flipped, 0)  # the grounding page opens on the first case
    at = run_app(flipped, "grounding")
    assert any("damaged bundle" in e and names.PATCHES in e for e in errors(at))
    assert not any("global similarity" in str(t.value) for t in at.text)


def test_a_damaged_thumbnail_is_one_line_on_the_search_page(clean_bundle: Path, tmp_path: Path) -> None:
    damaged = Path(shutil.copytree(clean_bundle, tmp_path / "thumbs"))
    thumbs = current_folder(damaged) / names.THUMBS
    for offset in range(0, thumbs.stat().st_size, 997):  # every block of every thumbnail
        flip_bit(thumbs, offset)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BUNDLES_ENV, str(damaged))
        at = AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT)
        at.query_params["q"] = "pleural effusion"
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("damaged bundle" in e and names.THUMBS in e for e in errors(at))

"""Where the tests find the repository and the shared read-only corpora (``../shared/data`` beside the repository;
tests that need a corpus skip with a message where it is absent)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository root."""
APP_SCRIPT = REPO / "webapp" / "app.py"
"""The Streamlit script the app tests run."""
SHARED_DATA = REPO.parent / "shared" / "data"
"""The shared corpora folder."""
COVID_CORPUS = SHARED_DATA / "covid_chestxray"
"""The covid-chestxray corpus (images and reports.csv)."""

"""The container image, built and run here: ``scripts/container.sh build`` (a local Debian base, no registry) and
``smoke`` (read-only root filesystem, read-only bundle, non-root, healthy, a search, a case and a grounding map drawn
in Chromium through it, no request leaving the app's address). Needs podman (and root, for its storage); the build
reuses podman's layer cache, so after the first build it redoes only the project's own layers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import CHROMIUM, E2E_LABELS, E2E_REPORTS
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.paths import REPO
from tests.helpers.synthetic import tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(shutil.which("podman") is None or os.geteuid() != 0,
                                 reason="podman (as root) is needed to build the image"),
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not found at {CHROMIUM}")]


def _container_sh(*args: str, log: Path | None = None) -> str:
    """``scripts/container.sh ARGS``; its output, after asserting it succeeded (with ``log``, the containers' log)."""
    env = {**os.environ, "SMOKE_LOG": str(log)} if log else None
    done = subprocess.run(["bash", "scripts/container.sh", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=3600, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:] + (log.read_text() if log and log.exists() else "")
    return out


def test_the_image_builds_and_serves_a_search_and_a_grounding_map_read_only(tmp_path: Path) -> None:
    _container_sh("build")
    bundle = model_bundle(tmp_path, tiny_model(), APP_CASES, reports=E2E_REPORTS, labels=E2E_LABELS)
    out = _container_sh("smoke", str(bundle), str(tmp_path / "images"), log=tmp_path / "container.log")
    assert "runs as uid 10001, root filesystem and bundle read-only" in out
    assert "container smoke: passed" in out


def test_compose_serves_two_app_containers_behind_caddy_and_survives_one_stopping(tmp_path: Path) -> None:
    _container_sh("build")  # in podman's cache after the test above
    _container_sh("build-proxy")
    bundle = model_bundle(tmp_path, tiny_model(), APP_CASES, reports=E2E_REPORTS, labels=E2E_LABELS)
    out = _container_sh("compose-smoke", str(bundle), str(tmp_path / "images"), log=tmp_path / "compose.log")
    assert "two app containers behind Caddy" in out and "TLS from its internal CA, sticky" in out
    assert "container smoke: passed" in out
    assert "one app container stopped, Caddy serves from the other" in out

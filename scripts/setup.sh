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
# The checkout's cxr_explorer/ folder is the package itself (retrieval/, index/, webapp/ linked into it), which
# setuptools' editable build warns about at length on every set-up; the warning does not apply here.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --no-deps -e .

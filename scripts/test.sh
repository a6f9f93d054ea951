#!/usr/bin/env bash
# The test command: set up (with dev tools), install Debian's chromium (browser tests) and caddy (replica tests) if
# missing, lint (ruff) and type-check (mypy through scripts/typecheck.py, which sees the package-dir mapping), then
# run pytest. A lint or type error fails the command before any test runs. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
for tool in chromium caddy; do  # caddy: the real proxy of the replica tests (tests/e2e/test_replicas.py)
  if ! command -v "$tool" >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null) \
      || echo "warning: could not install $tool; the tests that need it will be skipped" >&2
  fi
done
echo "== ruff" && .venv/bin/ruff check .
echo "== mypy" && .venv/bin/python scripts/typecheck.py
exec .venv/bin/python -m pytest "$@"

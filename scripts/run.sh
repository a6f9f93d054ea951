#!/usr/bin/env bash
# The main job in one command: set up, fetch the weights and a demo corpus (or use local ones), build an index
# bundle and start the explorer. All arguments go to `cxr-explorer demo` (see `cxr-explorer demo --help`), e.g.
#   bash scripts/run.sh                                   # online: BioViL weights + Open-i demo corpus
#   bash scripts/run.sh --corpus ../shared/data/covid_chestxray --weights-dir ~/biovil   # offline
#   bash scripts/run.sh --corpus ../shared/data/covid_chestxray --model tiny-random       # smoke run, NOT a real model
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
exec .venv/bin/cxr-explorer demo "$@"

#!/usr/bin/env bash
# Build .venv-ref: Microsoft's reference implementation (hi-ml-multimodal 0.2.2) for tests/reference/.
# transformers stays on 4.57.x: hi-ml's text path calls tokenizer.batch_encode_plus, which transformers 5 removed.
# Idempotent. Once .venv-ref exists, tests/reference/test_reference_venv.py runs instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-ref/bin/python ]; then
  python3 -m venv .venv-ref
fi
.venv-ref/bin/python -m pip install -q --upgrade pip
.venv-ref/bin/python -m pip install -q torch==2.13.0 torchvision==0.28.0 hi-ml-multimodal==0.2.2 "transformers==4.57.*"
.venv-ref/bin/python -c "import health_multimodal, transformers; print('hi-ml-multimodal 0.2.2, transformers', transformers.__version__)"

#!/usr/bin/env bash
# End-to-end GPU benchmark on a machine with an NVIDIA GPU: GPU install into .venv-gpu, then the build (bf16, decode
# workers sized to the cores), the encoders, query encode, and faiss-gpu flat and IVF search at 100k and 1M vectors;
# figures go to benchmarks/results/gpu-<time>.json and .md. Usage: bash benchmarks/gpu.sh [--full]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "benchmarks/gpu.sh: no NVIDIA GPU here (nvidia-smi failed); run it on a GPU machine" >&2
  exit 2
fi
VENV=.venv-gpu
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements-gpu.txt   # requirements-core.txt + faiss-gpu, never faiss-cpu
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" - <<'PY'
import faiss, torch
assert torch.cuda.is_available(), "torch has no CUDA here: install a CUDA build of torch 2.13.0"
assert faiss.get_num_gpus() > 0, "faiss has no GPU support: is faiss-gpu installed (and no faiss-cpu)?"
print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; faiss GPUs {faiss.get_num_gpus()}")
PY
"$VENV/bin/python" -m benchmarks.run "${1:---quick}" --gpu \
    --out "benchmarks/results/gpu-$(date -u +%Y%m%d-%H%M%S).json"

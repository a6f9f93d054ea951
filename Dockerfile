# cxr-explorer: the explorer app in a container. Research use only, not for diagnosis.
#   CPU (default):  docker build -t cxr-explorer .
#   GPU:            docker build --build-arg VARIANT=gpu -t cxr-explorer:gpu .
#   Run:            docker run -p 8501:8501 -v hf:/data/hf -v $PWD/bundles:/data/bundles cxr-explorer
# Install steps are the README's: `bash scripts/setup.sh requirements.txt` (tests check they stay identical).
ARG VARIANT=cpu

FROM python:3.11-slim-bookworm AS base-cpu
ENV TORCH_INDEX=https://download.pytorch.org/whl/cpu \
    FAISS_GPU=""

FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04 AS base-gpu
# faiss-gpu 1.15.x (not faiss-gpu-cu12, which has no Hopper kernels) and the CUDA build of torch.
ENV TORCH_INDEX=https://download.pytorch.org/whl/cu126 \
    FAISS_GPU="faiss-gpu==1.15.*"
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# hadolint ignore=DL3006
FROM base-${VARIANT} AS final
ENV PYTHONUNBUFFERED=1 \
    HF_HOME=/data/hf \
    CXR_BUNDLES=/data/bundles \
    PIP_NO_CACHE_DIR=1
RUN groupadd --gid 10001 cxr && useradd --create-home --uid 10001 --gid 10001 cxr \
    && mkdir -p /data/hf /data/bundles /app \
    && chown -R cxr:cxr /data /app
WORKDIR /app
COPY --chown=cxr:cxr requirements.txt pyproject.toml README.md ./
COPY --chown=cxr:cxr scripts ./scripts
COPY --chown=cxr:cxr retrieval ./retrieval
COPY --chown=cxr:cxr index ./index
COPY --chown=cxr:cxr webapp ./webapp
COPY --chown=cxr:cxr cxr_explorer ./cxr_explorer
USER 10001:10001
RUN PIP_EXTRA_INDEX_URL="$TORCH_INDEX" bash scripts/setup.sh requirements.txt \
    && if [ -n "$FAISS_GPU" ]; then \
         .venv/bin/python -m pip uninstall -y faiss-cpu && .venv/bin/python -m pip install "$FAISS_GPU"; \
       fi
ENV PATH=/app/.venv/bin:$PATH
VOLUME ["/data/hf", "/data/bundles"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["sh", "-c", "cxr-explorer app $CXR_BUNDLES/* --host 0.0.0.0 --port 8501"]

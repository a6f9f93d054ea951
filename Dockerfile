# cxr-explorer: the explorer app in a container. Research use only, not for diagnosis.
#   CPU (default):  docker build -t cxr-explorer .
#   GPU:            docker build --build-arg VARIANT=gpu -t cxr-explorer:gpu .
#   Run:            docker run -p 8501:8501 -v hf:/data/hf -v $PWD/bundles:/data/bundles cxr-explorer
# With no bundle under /data/bundles the container prints one line saying so and exits with code 2.
# Both variants use Ubuntu 24.04's Python; they differ only in the base image, the torch wheel index and the
# requirements file (requirements.txt = requirements-core.txt + faiss-cpu; requirements-gpu.txt = + faiss-gpu).
# Dependencies install before the code is copied, so a code change does not reinstall torch. Everything is
# installed as root; the app runs as user 10001, who cannot write the code or the virtualenv.
ARG VARIANT=cpu

FROM ubuntu:24.04 AS base-cpu
ENV REQUIREMENTS=requirements.txt \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04 AS base-gpu
ENV REQUIREMENTS=requirements-gpu.txt

# hadolint ignore=DL3006
FROM base-${VARIANT} AS final
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
WORKDIR /app
COPY requirements-core.txt requirements.txt requirements-gpu.txt ./
RUN python -m pip install -r "$REQUIREMENTS"
COPY pyproject.toml README.md LICENSE ./
COPY retrieval ./retrieval
COPY index ./index
COPY webapp ./webapp
COPY cxr_explorer ./cxr_explorer
RUN python -m pip install --no-deps . \
    && groupadd --gid 10001 cxr && useradd --no-create-home --uid 10001 --gid 10001 cxr \
    && mkdir -p /data/hf /data/bundles && chown cxr:cxr /data/hf
USER 10001:10001
VOLUME ["/data/hf", "/data/bundles"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["cxr-explorer", "app", "--bundles-in", "/data/bundles", "--host", "0.0.0.0", "--port", "8501", "--no-auth"]

# cxr-explorer: the explorer app in a container. Research use only, not for diagnosis.
#   CPU (default):  docker build -t cxr-explorer .
#   GPU:            docker build --build-arg VARIANT=gpu -t cxr-explorer:gpu .
#   Run:            docker run -p 8501:8501 -v hf:/data/hf -v $PWD/bundles:/data/bundles:ro cxr-explorer
#   No registry:    bash scripts/container.sh build   (makes a local Debian base; see docs/deploy.md)
# With no bundle under /data/bundles the container prints one line saying so and exits with code 2.
# The base images are build arguments with public defaults: Debian bookworm's Python for the CPU variant, NVIDIA's
# CUDA runtime (Ubuntu 24.04) for the GPU one. They differ only in the base, the torch wheel index and the
# requirements file (requirements.txt = requirements-core.txt + faiss-cpu; requirements-gpu.txt = + faiss-gpu).
# Two stages: `build` makes the virtualenv (pip, the project's wheel); the final stage copies that virtualenv as one
# layer over a base with only Python added (no pip cache, no build tools, no test dependencies). Dependencies
# install before the code is copied, so a code change does not reinstall torch. Everything is installed as root;
# the app runs as user 10001, who cannot write the code or the virtualenv.
ARG VARIANT=cpu
ARG BASE_CPU=debian:bookworm-slim
ARG BASE_GPU=nvidia/cuda:12.6.3-runtime-ubuntu24.04

# hadolint ignore=DL3006
FROM ${BASE_CPU} AS base-cpu
ENV REQUIREMENTS=requirements.txt \
    TORCH_INDEX_DEFAULT=https://download.pytorch.org/whl/cpu

# hadolint ignore=DL3006
FROM ${BASE_GPU} AS base-gpu
ENV REQUIREMENTS=requirements-gpu.txt \
    TORCH_INDEX_DEFAULT=

# hadolint ignore=DL3006
FROM base-${VARIANT} AS python
ARG DEBIAN_FRONTEND=noninteractive
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*

FROM python AS build
# TORCH_INDEX: where pip finds the torch wheel (empty: only the pip configuration, e.g. a mounted offline mirror).
ARG TORCH_INDEX=default
# PIP_CERT: a CA bundle for pip (a mounted host CA where a proxy or a private mirror needs it); empty: pip's own
ARG PIP_CERT=
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
WORKDIR /src
COPY requirements-core.txt requirements.txt requirements-gpu.txt ./
RUN index="$TORCH_INDEX"; [ "$index" = default ] && index="$TORCH_INDEX_DEFAULT"; \
    [ -n "$PIP_CERT" ] || unset PIP_CERT; \
    /opt/venv/bin/python -m pip install ${index:+--extra-index-url "$index"} -r "$REQUIREMENTS" \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +
COPY pyproject.toml README.md LICENSE ./
COPY retrieval ./retrieval
COPY index ./index
COPY webapp ./webapp
COPY cxr_explorer ./cxr_explorer
RUN [ -n "$PIP_CERT" ] || unset PIP_CERT; \
    python3 -m venv /opt/wheelenv \
    && /opt/wheelenv/bin/python -m pip wheel --no-deps --wheel-dir /wheels .

# The proxy that compose.yaml puts in front of the app containers, for a host that cannot pull Docker Hub's caddy
# image (scripts/container.sh build-proxy): Debian's caddy on the same base, laid out as the official image is
# (the Caddyfile at /etc/caddy/Caddyfile, its state and internal CA under /data).
FROM base-cpu AS proxy
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends caddy ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV XDG_CONFIG_HOME=/config \
    XDG_DATA_HOME=/data
EXPOSE 443
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

FROM python AS final
ENV HF_HOME=/data/hf \
    NUMBA_CACHE_DIR=/var/cache/cxr-explorer/numba \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
COPY --from=build /wheels /wheels
RUN pip install --no-deps --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --gid 10001 cxr && useradd --no-create-home --uid 10001 --gid 10001 cxr \
    && mkdir -p /data/hf /data/bundles /data/config "$NUMBA_CACHE_DIR" \
    && chown cxr:cxr /data/hf /data/bundles "$NUMBA_CACHE_DIR"
USER 10001:10001
# UMAP's numba kernels compiled once into the image's cache, so no process recompiles them.
RUN python -c "import numpy as np; from cxr_explorer.retrieval.maps.projection import umap_coords; \
umap_coords(np.random.default_rng(0).standard_normal((64, 128)).astype(np.float32))"
# /data/bundles: each bundle mounted read-only at /data/bundles/NAME; its curation decisions go to the writable
# NAME.review beside it (so /data/bundles itself is a writable volume owned by the app's user). /data/config: files
# the operator owns (read-only). /var/cache/cxr-explorer: the numba cache.
VOLUME ["/data/hf", "/data/bundles", "/data/config", "/var/cache/cxr-explorer"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
# Sign-in is on by default: the operator mounts the sign-in file at /data/config/auth.toml (docs/deploy.md). A
# container without it stops with one line naming the file; a demo on a machine only its user reaches passes its own
# command with --no-auth instead.
CMD ["cxr-explorer", "app", "--bundles-in", "/data/bundles", "--host", "0.0.0.0", "--port", "8501", \
     "--auth", "/data/config/auth.toml"]

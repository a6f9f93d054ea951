#!/usr/bin/env bash
# Build and smoke-test the container image with podman, on a machine with no container registry.
#   bash scripts/container.sh build          the CPU image ($IMAGE, default localhost/cxr-explorer:cpu)
#   bash scripts/container.sh build-gpu      the GPU stage ($IMAGE_GPU); needs $BASE_GPU to be pullable or local
#   bash scripts/container.sh build-proxy    compose.yaml's Caddy from Debian's package ($IMAGE_PROXY), for a host
#       that cannot pull Docker Hub's caddy image
#   bash scripts/container.sh smoke BUNDLE [IMAGES ...]
#       run the image with a read-only root filesystem on BUNDLE (mounted :ro; the image folders it was built from
#       mounted :ro at the same path) as the non-root user, check its health, and draw a search, a case and a
#       grounding map through it in Chromium (scripts/container_smoke.py)
#   bash scripts/container.sh compose-smoke BUNDLE [IMAGES ...]
#       compose.yaml as an operator runs it (two app containers, Caddy with its internal CA) on BUNDLE, published on
#       loopback: TLS checked against Caddy's root, the sticky cookie, the Chromium steps of `smoke` through Caddy,
#       then one app container stopped and every request still answered (needs podman-compose)
# `build` makes a local Debian bookworm base with mmdebstrap (no registry needed) unless $BASE_CPU is given, and
# mounts the host's pip configuration and every local path it names (wheel folders, file:// indexes, the CA file)
# read-only into the build, so pip installs exactly what it would install on the host. Every build argument is
# passed explicitly (podman 4.3 does not resolve ARG defaults inside `FROM base-${VARIANT}`). HEALTHCHECK needs the
# docker image format. Podman's configuration for this kernel (hybrid cgroups) is in docs/deploy.md.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/cxr-explorer:cpu}
IMAGE_GPU=${IMAGE_GPU:-localhost/cxr-explorer:gpu}
IMAGE_PROXY=${IMAGE_PROXY:-localhost/cxr-explorer-proxy:latest}
PIP_CA_IN_BUILD=/run/pip-host-ca.crt
LOCAL_BASE=${LOCAL_BASE:-localhost/debian-bookworm-minbase:latest}
BASE_GPU=${BASE_GPU:-nvidia/cuda:12.6.3-runtime-ubuntu24.04}
PODMAN=(podman --runtime "${RUNTIME:-runc}")

die() { echo "container.sh: $*" >&2; exit 2; }

pip_config_values() {  # every value of the host's pip configuration, one per line
  local pip
  pip=$(command -v pip3 || command -v pip || echo .venv/bin/pip)
  "$pip" config list 2>/dev/null | sed -E "s/^[^=]*='(.*)'$/\1/" | tr ' ' '\n'
  env | sed -nE 's/^PIP_[A-Z_]+=(.*)$/\1/p' | tr ' ' '\n'
}

pip_cert() {  # the CA bundle the host's pip uses, if it names one
  local pip
  pip=$(command -v pip3 || command -v pip || echo .venv/bin/pip)
  { "$pip" config list 2>/dev/null | sed -nE "s/^[^=]*\.cert='(.*)'$/\1/p"; echo "${PIP_CERT:-}"; } | grep -m1 . || true
}

pip_volumes() {  # --volume flags for the pip configuration files and the local paths they name; the CA bundle goes
  # to its own path (mounted over the image's own CA file it would break the ca-certificates package)
  local f p cert
  cert=$(pip_cert)
  for f in /etc/pip.conf /etc/xdg/pip "${XDG_CONFIG_HOME:-$HOME/.config}/pip" "$HOME/.pip"; do
    [ -e "$f" ] && echo "--volume=$f:$f:ro"
  done
  pip_config_values | sed 's#^file://##' | while read -r p; do
    case "$p" in
      /etc/pip.conf | /etc/xdg/pip/* | "$HOME"/.config/pip/* | "$HOME"/.pip/*) ;;  # inside a mount above
      */simple | */simple/) p=$(dirname "$p"); echo "--volume=$p:$p:ro" ;;  # an index links to ../files
      /*) [ -e "$p" ] && [ "$p" != "$cert" ] && echo "--volume=$p:$p:ro" ;;
    esac
  done | sort -u
  [ -n "$cert" ] && [ -f "$cert" ] && echo "--volume=$cert:$PIP_CA_IN_BUILD:ro"
  return 0
}

torch_index() {  # empty when the pip configuration already holds a local torch wheel (an offline mirror)
  local p
  if [ -n "${TORCH_INDEX+set}" ]; then echo "$TORCH_INDEX"; return; fi
  while read -r p; do
    p=${p#file://}
    if compgen -G "$p/torch-*.whl" >/dev/null || [ -d "$p/torch" ]; then echo ""; return; fi
  done < <(pip_config_values)
  echo default
}

local_base() {  # a minimal Debian bookworm image made here, imported once
  if "${PODMAN[@]}" image exists "$LOCAL_BASE"; then return; fi
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap), or give BASE_CPU"
  local tar
  tar=$(mktemp -d)/base.tar
  mmdebstrap --variant=minbase bookworm "$tar"
  "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' "$tar" "$LOCAL_BASE"
  rm -rf "$(dirname "$tar")"
}

build() {  # build VARIANT TAG [TARGET]
  local variant=$1 tag=$2 target=${3:-final} base_cpu=${BASE_CPU:-}
  if [ -z "$base_cpu" ]; then local_base; base_cpu=$LOCAL_BASE; fi
  mapfile -t volumes < <(pip_volumes)
  local start=$SECONDS
  "${PODMAN[@]}" build --format docker --network=host "${volumes[@]}" \
    --build-arg VARIANT="$variant" --build-arg BASE_CPU="$base_cpu" --build-arg BASE_GPU="$BASE_GPU" \
    --build-arg TORCH_INDEX="$(torch_index)" --build-arg DEBIAN_FRONTEND=noninteractive \
    --build-arg PIP_CERT="$([ -n "$(pip_cert)" ] && echo "$PIP_CA_IN_BUILD")" \
    --target "$target" -t "$tag" .
  echo "container.sh: built $tag in $((SECONDS - start)) s, $("${PODMAN[@]}" image inspect "$tag" --format '{{.Size}}' \
    | awk '{printf "%.2f GB", $1 / 1e9}')"
}

smoke() {  # smoke BUNDLE [IMAGES ...]
  local bundle=${1:-} port url dir
  [ -n "$bundle" ] && [ -d "$bundle" ] || die "give a bundle folder: container.sh smoke BUNDLE [IMAGES ...]"
  bundle=$(cd "$bundle" && pwd)
  shift
  local mounts=()
  for dir in "$@"; do
    dir=$(cd "$dir" && pwd)
    mounts+=(-v "$dir:$dir:ro")
  done
  port=${PORT:-$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  SMOKE_NAME=cxr-smoke-$$
  url=http://127.0.0.1:$port
  trap '"${PODMAN[@]}" logs "$SMOKE_NAME" > "${SMOKE_LOG:-/dev/null}" 2>&1 || true
        "${PODMAN[@]}" rm -f -v "$SMOKE_NAME" >/dev/null 2>&1' EXIT
  # the image's command without sign-in (no identity provider here; the port is published on loopback only)
  "${PODMAN[@]}" run -d --init --name "$SMOKE_NAME" --read-only --tmpfs /tmp --tmpfs /data/hf \
    -p "127.0.0.1:$port:8501" -v "$bundle:/data/bundles/$(basename "$bundle"):ro" "${mounts[@]}" "$IMAGE" \
    cxr-explorer app --bundles-in /data/bundles --host 0.0.0.0 --port 8501 --no-auth \
    >/dev/null 2>&1 || die "podman run failed: $("${PODMAN[@]}" logs "$SMOKE_NAME" 2>&1 | tail -3)"
  local user rootfs
  user=$("${PODMAN[@]}" exec "$SMOKE_NAME" id -u)
  [ "$user" != 0 ] || die "the app runs as root"
  rootfs=$("${PODMAN[@]}" exec "$SMOKE_NAME" sh -c 'for d in /opt/venv /data/bundles/*/; do touch "$d/x" 2>&1; done; true')
  [ "$(grep -c 'Read-only file system' <<<"$rootfs")" = 2 ] || die "the root filesystem or the bundle is writable: $rootfs"
  echo "container.sh: runs as uid $user, root filesystem and bundle read-only"
  for _ in $(seq 300); do
    "${PODMAN[@]}" healthcheck run "$SMOKE_NAME" >/dev/null 2>&1 && break
    "${PODMAN[@]}" container exists "$SMOKE_NAME" || die "the container exited"
    sleep 1
  done
  "${PODMAN[@]}" healthcheck run "$SMOKE_NAME" >/dev/null 2>&1 || die "the health check failed"
  curl -fsS "$url/_stcore/health" >/dev/null || die "the published port $port does not answer"
  echo "container.sh: healthy at $url"
  .venv/bin/python scripts/container_smoke.py "$url"
}

compose_smoke() {  # compose-smoke BUNDLE [IMAGES ...]
  local bundle=${1:-} port work dir compose caddy health
  [ -n "$bundle" ] && [ -d "$bundle" ] || die "give a bundle folder: container.sh compose-smoke BUNDLE [IMAGES ...]"
  bundle=$(cd "$bundle" && pwd)
  shift
  compose=$(command -v podman-compose || echo .venv/bin/podman-compose)
  [ -x "$compose" ] || die "podman-compose is missing (pip install podman-compose, or use docker compose by hand)"
  "${PODMAN[@]}" image exists "$IMAGE" || die "no $IMAGE: run container.sh build first"
  "${PODMAN[@]}" image exists "$IMAGE_PROXY" || die "no $IMAGE_PROXY: run container.sh build-proxy first"
  port=${PORT:-$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  work=$(mktemp -d)
  mkdir "$work/config"
  # compose.yaml as it is, plus the image's command without sign-in (no identity provider here; published on
  # loopback only) and the image folders the bundle was built from, read-only at their own paths
  {
    echo "x-smoke: &smoke"
    echo "  command: [cxr-explorer, app, --bundles-in, /data/bundles, --host, 0.0.0.0, --port, '8501', --no-auth]"
    echo "  volumes:"
    for dir in "$@"; do dir=$(cd "$dir" && pwd); echo "    - $dir:$dir:ro"; done
    [ $# -gt 0 ] || echo "    - $work/config:/data/smoke-unused:ro"
    echo "services: {app1: *smoke, app2: *smoke}"
  } > "$work/smoke.yaml"
  export CXR_IMAGE=$IMAGE CADDY_IMAGE=$IMAGE_PROXY CXR_PUBLISH=127.0.0.1:$port CXR_SERVER_NAME=localhost \
    CXR_BUNDLES_DIR=${bundle%/*} CXR_BUNDLE=${bundle##*/} CXR_CONFIG_DIR=$work/config \
    CXR_COOKIE_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  local project=cxrsmoke$$
  COMPOSE=("$compose" -p "$project" -f compose.yaml -f "$work/smoke.yaml")
  SMOKE_WORK=$work
  trap '"${COMPOSE[@]}" logs > "${SMOKE_LOG:-/dev/null}" 2>&1 || true
        "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true; rm -rf "$SMOKE_WORK"' EXIT
  "${COMPOSE[@]}" up -d >"$work/up.log" 2>&1 || die "compose up failed: $(tail -3 "$work/up.log")"
  caddy=${project}_caddy_1
  for _ in $(seq 60); do
    "${PODMAN[@]}" exec "$caddy" cat /data/caddy/pki/authorities/local/root.crt > "$work/root.crt" 2>/dev/null && break
    sleep 1
  done
  [ -s "$work/root.crt" ] || die "Caddy made no internal CA (caddy-data volume)"
  for _ in $(seq 300); do
    health=$(curl -sS --cacert "$work/root.crt" -o /dev/null -w '%{http_code}' "https://localhost:$port/_stcore/health" \
      2>/dev/null || true)
    [ "$health" = 200 ] && break
    sleep 1
  done
  [ "$health" = 200 ] || die "no healthy app behind Caddy at https://localhost:$port (TLS checked against its root)"
  curl -sS --cacert "$work/root.crt" -D - -o /dev/null "https://localhost:$port/" | grep -qi '^set-cookie: cxr_replica=' \
    || die "Caddy set no sticky-session cookie"
  echo "container.sh: two app containers behind Caddy at https://localhost:$port (TLS from its internal CA, sticky)"
  CXR_SMOKE_CA="$work/root.crt" .venv/bin/python scripts/container_smoke.py "https://localhost:$port"
  "${PODMAN[@]}" stop -t 2 "${project}_app1_1" >/dev/null 2>&1  # podman 4.3 without systemd logs its health timer
  sleep 6  # Caddy's health check (every 2 s) takes the stopped container out
  for _ in 1 2 3 4 5 6; do
    curl -fsS --cacert "$work/root.crt" -o /dev/null "https://localhost:$port/_stcore/health" \
      || die "a request failed after one app container stopped"
  done
  echo "container.sh: one app container stopped, Caddy serves from the other"
}

case "${1:-}" in
  build) build cpu "$IMAGE" ;;
  build-gpu) build gpu "$IMAGE_GPU" ;;
  build-proxy) build cpu "$IMAGE_PROXY" proxy ;;
  smoke) shift; smoke "$@" ;;
  compose-smoke) shift; compose_smoke "$@" ;;
  *) die "usage: container.sh build | build-gpu | build-proxy | smoke BUNDLE | compose-smoke BUNDLE" ;;
esac

#!/usr/bin/env bash
# Build the stack's images with podman on this machine: ragapp's (the repository's
# Dockerfile) and, unless a real one is present, the chromadb/chroma stand-in.
#
# Reuses this machine's pip settings so the build downloads what it must and no more:
# wheelhouses (PIP_FIND_LINKS, ragapp's llama.cpp wheel cache) are mounted read-only into
# the build, and a CA file (PIP_CERT) too. With a CPU torch wheel in a wheelhouse, torch
# comes from there rather than download.pytorch.org.
set -euo pipefail
cd "$(dirname "$0")/../.."
RAGAPP_IMAGE=${RAGAPP_IMAGE:-localhost/ragapp:latest}
CHROMA_IMAGE=docker.io/chromadb/chroma:1.5.9
LLAMA_WHEELS=${LLAMA_WHEELS:-$HOME/.cache/ragapp/wheels/llama-avx2}

pip_find_links=${PIP_FIND_LINKS:-$(pip config get global.find-links 2>/dev/null || true)}
pip_cert=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}

# docker format: OCI images drop HEALTHCHECK, which the stack relies on
args=(--network host --format docker)
links=() torch_index=()
n=0
for dir in $LLAMA_WHEELS $pip_find_links; do
  [ -d "$dir" ] || continue
  args+=(-v "$dir:/run/wheels/$n:ro")
  links+=("/run/wheels/$n")
  ls "$dir"/torch-*+cpu-*.whl >/dev/null 2>&1 && torch_index=(--build-arg TORCH_INDEX=)
  n=$((n + 1))
done
[ ${#links[@]} -gt 0 ] && args+=(--build-arg "PIP_FIND_LINKS=${links[*]}")
if [ -n "$pip_cert" ] && [ -f "$pip_cert" ]; then
  args+=(-v "$pip_cert:/run/pip-cert.pem:ro" --build-arg PIP_CERT=/run/pip-cert.pem)
fi

if ! podman image exists "$CHROMA_IMAGE"; then
  echo "building the $CHROMA_IMAGE stand-in (chromadb from PyPI)" >&2
  podman build -q "${args[@]}" -f docker/chroma/Dockerfile -t "$CHROMA_IMAGE" . >/dev/null
fi
echo "building $RAGAPP_IMAGE" >&2
podman build -q "${args[@]}" "${torch_index[@]}" -t "$RAGAPP_IMAGE" . >/dev/null

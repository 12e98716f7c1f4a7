#!/usr/bin/env bash
# Make `debian:bookworm-slim` available to podman where no image registry is reachable:
# build it from Debian's own packages with debootstrap (minbase, ~80 s) and import it.
# Does nothing when the image is already there.
set -euo pipefail
IMAGE=docker.io/library/debian:bookworm-slim
podman image exists "$IMAGE" && exit 0
# the mirror this machine's apt uses (deb822 `URIs:` or a classic sources.list line)
MIRROR=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1)
MIRROR=${MIRROR:-$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
echo "building $IMAGE with debootstrap from $MIRROR" >&2
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >/dev/null
tar -C "$ROOT" -c . | podman import - "$IMAGE" >/dev/null
echo "imported $IMAGE" >&2

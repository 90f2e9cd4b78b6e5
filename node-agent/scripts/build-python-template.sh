#!/usr/bin/env bash
# Builds the `python` sandbox template image locally, without a registry.
#
# Usage (as root, on a Debian/Ubuntu host with access to a Debian mirror):
#   node-agent/scripts/build-python-template.sh [TAG] [SUITE]
#   TAG defaults to cynode/python:3, SUITE to bookworm.
#
# Why not a Dockerfile: no base image can be pulled (there is no registry), and the busybox
# template has no package manager or interpreter to install Python into. So the root filesystem
# is made from Debian packages with debootstrap and imported, exactly like the busybox template:
#   - minimal Debian (minbase) + python3 and venv, apt caches and lists removed;
#   - no extra user: Debian's `nobody:nogroup` already is uid/gid 65534, which the executor
#     runs every sandbox as (with a read-only root and tmpfs /tmp and /work);
#   - labels cynode.template=python and cynode.builder-version so the agent can tell what it is.
# The image is about 170 MB (checked: builds in under 2 minutes, python3 3.11 runs as 65534
# with the executor's hardening). Add the tag to the node's templates to allow it.
set -euo pipefail

TAG="${1:-cynode/python:3}"
SUITE="${2:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BUILDER_VERSION=1

if [ "$(id -u)" -ne 0 ]; then
  echo "error: debootstrap needs root; run this script as root" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }

ROOT="$(mktemp -d /tmp/cynode-python-rootfs.XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$ROOT" "$MIRROR"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*
mkdir -p "$ROOT/work"
chmod 1777 "$ROOT/work" "$ROOT/tmp"

tar --numeric-owner -C "$ROOT" -c . | docker import \
  --change "LABEL cynode.template=python" \
  --change "LABEL cynode.builder-version=$BUILDER_VERSION" \
  --change "ENV PATH=/usr/local/bin:/usr/bin:/bin" \
  --change "USER 65534:65534" \
  --change "WORKDIR /work" \
  --change 'CMD ["python3"]' \
  - "$TAG"
echo "built $TAG"

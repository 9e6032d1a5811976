#!/usr/bin/env bash
# The parts of a Kubernetes control plane the cluster tests start for real
# (tests/kube/cluster.py), built from their Go modules once per machine into
# ${INSITU_CACHE:-~/.cache/insitu}/bin:
#   kube-apiserver                 k8s.io/kubernetes v1.36.3 (tools/kube pins the staging modules)
#   kine                           k3s-io/kine v0.17.5, the etcd API over SQLite (tools/kine)
#   kyverno-admission-controller   cmd/kyverno of kyverno v1.19.1 (tools/kyverno, the CLI's module)
#   kyverno-background-controller  cmd/background-controller of the same module (generate rules)
# Each is skipped when its stamp (go.mod, go.sum, this script) matches and the
# binary answers; build seconds are logged. Go's module and build caches are the
# user's (~/go, ~/.cache/go-build); builds run under `nice -n 10`, one at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${INSITU_CACHE:-$HOME/.cache/insitu}
BIN=$CACHE/bin
STAMPS=$CACHE/stamps
mkdir -p "$BIN" "$STAMPS"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# build NAME MODULE_DIR PACKAGE VERSION_ARGS...
build() {
  local name=$1 dir=$2 pkg=$3; shift 3
  local key
  key=$(cat "$dir/go.mod" "$dir/go.sum" "$0" | sha256sum | cut -c1-16)
  if [ "$(cat "$STAMPS/$name" 2>/dev/null)" = "$key" ] && "$BIN/$name" "$@" >/dev/null 2>&1; then
    return 0
  fi
  log "building $name from $dir ($pkg; Go, minutes on a cold cache)"
  local start
  start=$(date +%s)
  (cd "$dir" && GOFLAGS=-mod=readonly nice -n 10 go build -trimpath -ldflags='-s -w' -o "$BIN/$name.new" "$pkg")
  mv "$BIN/$name.new" "$BIN/$name"
  "$BIN/$name" "$@" >/dev/null 2>&1
  echo "$key" > "$STAMPS/$name"
  log "$name built in $(( $(date +%s) - start )) s"
}

build kine tools/kine github.com/k3s-io/kine --version
build kube-apiserver tools/kube k8s.io/kubernetes/cmd/kube-apiserver --version
build kyverno-admission-controller tools/kyverno github.com/kyverno/kyverno/cmd/kyverno --help
build kyverno-background-controller tools/kyverno github.com/kyverno/kyverno/cmd/background-controller --help

#!/usr/bin/env bash
# Idempotent set-up of everything insitu needs on this machine:
#   Debian packages (bubblewrap, acl, PostgreSQL, Chromium, ...), the Node tools
#   (configurable-http-proxy, anvil, solc), the Python environment in .venv/ and
#   the workspace environment in .venv-workspace/ (built from Debian's python3 so
#   that a sandboxed non-root process can execute it).
# Each step is skipped when its inputs have not changed since it last ran.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAMPS=$ROOT/.setup-stamps
mkdir -p "$STAMPS"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
digest() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark() { echo "$2" > "$STAMPS/$1"; }

# --- Debian packages ------------------------------------------------------
APT_PACKAGES=$(grep -v '^#' scripts/apt-packages.txt | xargs)
missing=()
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Node tools -----------------------------------------------------------
d=$(digest package.json package-lock.json)
if ! fresh npm "$d" || [ ! -x node_modules/.bin/configurable-http-proxy ]; then
  log "installing Node tools (configurable-http-proxy, anvil, solc)"
  # `npm ci`: installs exactly the lock (which lists anvil's binary package for
  # every platform) and never rewrites package-lock.json in the source tree.
  npm ci --no-audit --no-fund --loglevel=error
  mark npm "$(digest package.json package-lock.json)"
fi

# --- Python environment ---------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
d=$(digest pyproject.toml requirements.lock)
if ! fresh venv "$d"; then
  log "installing Python dependencies into .venv"
  . scripts/lib/wheelhouse.sh
  install_torch .venv/bin/pip
  .venv/bin/pip install -qq -c requirements.lock -e '.[dev,ml,test]'
  mark venv "$d"
fi

# --- further steps owned by the packages (contract build, workspace env) ---
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  bash "$step"
done

# --- compiled files outside the checkout, in both environments ---------------
. scripts/lib/pycache.sh
pycache_outside .venv prefix
if [ -x .venv-workspace/bin/python ]; then
  pycache_outside .venv-workspace none
fi

#!/usr/bin/env bash
# Build the workspace environment .venv-workspace/: what runs INSIDE a sandboxed
# workspace (jupyterhub-singleuser, JupyterLab, ipykernel and the imaging stack a
# researcher expects: PyTorch, MONAI, pydicom, numpy, pandas, scikit-learn,
# matplotlib, nibabel). Downloads are kept in pip's cache outside the source tree
# (/var/cache/insitu/pip, or $INSITU_PIP_CACHE), so torch (pinned ==2.13.0) comes once.
#
# It is built from Debian's /usr/bin/python3, not the pyenv interpreter of .venv:
# that one lives under a 0700 home directory that a sandboxed non-root uid cannot
# enter. Everything is made world-readable (and executables world-executable).
# The project's own workspace code (hub/workspace: the jupyter-server lock-down)
# is not installed here: the sandbox binds it read-only at /opt/insitu/python.
#
# Idempotent: skipped when the inputs (this script, requirements.lock) are unchanged
# and the environment answers an import check.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ENV=$ROOT/.venv-workspace
STAMPS=$ROOT/.setup-stamps
mkdir -p "$STAMPS"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

PACKAGES=(jupyter_server jupyterlab ipykernel pydicom numpy "torch==2.13.0" monai matplotlib jupyterhub
          pandas scikit-learn nibabel)
MODULES="jupyter_server jupyterlab ipykernel pydicom numpy torch monai matplotlib jupyterhub pandas sklearn nibabel"
export PIP_CACHE_DIR=${INSITU_PIP_CACHE:-/var/cache/insitu/pip}
mkdir -p "$PIP_CACHE_DIR"
key=$( (cat "$0" requirements.lock; printf '%s\n' "${PACKAGES[@]}") | sha256sum | cut -c1-16)
check() {
  [ -x "$ENV/bin/jupyterhub-singleuser" ] &&
  "$ENV/bin/python" -c 'import sys, importlib.util as u; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1].split()))' "$MODULES" >/dev/null 2>&1
}
if [ -f "$STAMPS/workspace-env" ] && [ "$(cat "$STAMPS/workspace-env")" = "$key" ] && check; then
  exit 0
fi

log "building the workspace environment .venv-workspace (Debian python3)"
if [ ! -x "$ENV/bin/python" ] || [ "$(readlink -f "$ENV/bin/python")" != "$(readlink -f /usr/bin/python3)" ]; then
  rm -rf "$ENV"
  /usr/bin/python3 -m venv "$ENV"
fi
# pin the packages the lock pins for the hub too (torch stays exactly 2.13.0). Not
# the whole lock: Debian's python is 3.11.2 and some of the lock's pins need 3.11.5.
grep -iE '^(jupyterhub|jupyter[_-]server|jupyterlab|ipykernel|jupyter[_-]client|pydicom|numpy|torch|monai|matplotlib|nbconvert)==' \
  requirements.lock | grep -viE '^torch==' > "$STAMPS/workspace-constraints.txt" || true
echo "torch==2.13.0" >> "$STAMPS/workspace-constraints.txt"
"$ENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
. scripts/lib/wheelhouse.sh
install_torch "$ENV/bin/pip"
"$ENV/bin/pip" install -q -c "$STAMPS/workspace-constraints.txt" "${PACKAGES[@]}" 2>&1 | grep -v '^WARNING: Location' || true
chmod -R a+rX "$ENV"
check || { echo "workspace environment check failed" >&2; exit 1; }
echo "$key" > "$STAMPS/workspace-env"

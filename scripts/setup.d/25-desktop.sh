#!/usr/bin/env bash
# The remote desktop inside workspaces (hub/workspace/desktop.py): jupyter-server-proxy
# in the workspace environment relays the browser's websocket to the sandbox's X server.
# The X server, window manager and DICOM viewers are Debian packages (scripts/apt-packages.txt).
# Idempotent: skipped when this script is unchanged and the module imports.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENV=$PWD/.venv-workspace
STAMPS=$PWD/.setup-stamps
key=$(sha256sum "$0" | cut -c1-16)
if [ -f "$STAMPS/desktop" ] && [ "$(cat "$STAMPS/desktop")" = "$key" ] &&
   "$ENV/bin/python" -c 'import jupyter_server_proxy' 2>/dev/null; then
  exit 0
fi
printf '\033[1m[setup]\033[0m %s\n' "desktop: jupyter-server-proxy in the workspace environment"
"$ENV/bin/pip" install -q "jupyter-server-proxy==4.6.0" 2>&1 | grep -v '^WARNING: Location' || true
chmod -R a+rX "$ENV"
"$ENV/bin/python" -c 'import jupyter_server_proxy'
echo "$key" > "$STAMPS/desktop"

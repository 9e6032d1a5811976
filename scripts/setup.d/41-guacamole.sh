#!/usr/bin/env bash
# Guacamole's protocol definitions for the tests: org.apache.guacamole:guacamole-ext
# from Maven Central, at the version of the web image the chart deploys
# (helm/insitu/values.yaml guacamole.webImage), into the cache folder
# (INSITU_CACHE_DIR, default /var/cache/insitu). The tests check the hub's
# desktop-connection parameters against its protocols/vnc.json.
#
# The Guacamole web application (guacamole.war), its JDBC extension and guacd are
# in no registry this machine reaches (Maven Central holds only guacamole-common,
# guacamole-common-js and guacamole-ext), so they are not installed.
#
# Idempotent: skipped when the jar is there.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${INSITU_CACHE_DIR:-/var/cache/insitu}
VERSION=$(sed -n 's/^ *webImage: *guacamole\/guacamole:\([0-9.]*\).*$/\1/p' helm/insitu/values.yaml | head -1)
[ -n "$VERSION" ] || { echo "guacamole.webImage version not found in helm/insitu/values.yaml" >&2; exit 1; }
JAR=$CACHE/guacamole/guacamole-ext-$VERSION.jar
if [ -s "$JAR" ] && unzip -tq "$JAR" >/dev/null 2>&1; then
  exit 0
fi
printf '\033[1m[setup]\033[0m %s\n' "downloading guacamole-ext $VERSION (Maven Central)"
mkdir -p "$CACHE/guacamole"
mvn -B -q --strict-checksums org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
  -Dartifact="org.apache.guacamole:guacamole-ext:$VERSION" -DoutputDirectory="$CACHE/guacamole"
unzip -tq "$JAR" >/dev/null

#!/usr/bin/env bash
# Compile the tracer's anchor contract (tracer/contracts/TraceAnchor.sol) with the
# pinned solc-js from node_modules into tracer/contracts/TraceAnchor.json.
# Idempotent: does nothing when the artefact already matches the source.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! node tracer/contracts/build.js --check >/dev/null 2>&1; then
  printf '\033[1m[setup]\033[0m %s\n' "compiling tracer/contracts/TraceAnchor.sol"
  node tracer/contracts/build.js >/dev/null
fi

#!/usr/bin/env bash
# One command on a fresh machine: install what is needed, start a local Kafka broker and
# Gatekeeper in front of it with config/example.yaml (or the config given), print where to connect.
set -euo pipefail
GK_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$GK_ROOT/scripts/setup.sh"
# harness/ is not installed with the package: put the checkout on the path. The working
# directory stays the caller's, so a relative CONFIG is relative to where the command was run.
PYTHONPATH="$GK_ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$GK_PY" -m harness.quickstart "$@"

#!/usr/bin/env bash
# One command on a fresh machine: install what is needed, start a local Kafka broker and
# Gatekeeper in front of it with config/example.yaml (or the config given), print where to connect.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec "$GK_PY" -m gatekeeper.testing.quickstart "$@"

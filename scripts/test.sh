#!/usr/bin/env bash
# The one test command: installs everything (idempotent, cached) and runs lint, types,
# the Rego policy tests and every Python test, unit and integration (real Kafka, real OPA).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
echo "== ruff"
ruff check .
echo "== mypy"
mypy
if compgen -G "policies/**/*.rego" >/dev/null || compgen -G "policies/*.rego" >/dev/null; then
  echo "== opa test policies/"
  "$("$GK_PY" -c 'from harness.deps import ensure_opa; print(ensure_opa())')" test policies/ -v --timeout 120s
fi
echo "== pytest"
set +e
"$GK_PY" -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: failing, a run that tests nothing is not green" >&2
  exit 1
fi
exit "$rc"

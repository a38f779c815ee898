#!/usr/bin/env bash
# Installs what Gatekeeper and its tests need, idempotently, into a cache outside the work tree:
# a Python 3.11 virtualenv with the package (editable) and test extras, the Kafka jars
# (Maven, from harness/kafka/pom.xml) and the OPA binary (go install, pinned).
# Sourced by scripts/test.sh and scripts/quickstart.sh; exports GK_PY (the venv's python).
set -euo pipefail
GK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GATEKEEPER_CACHE="${GATEKEEPER_CACHE:-$HOME/.cache/gatekeeper}"
mkdir -p "$GATEKEEPER_CACHE"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="$GATEKEEPER_CACHE/venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
stamp="$VENV/.gatekeeper-$(cat "$GK_ROOT/setup.cfg" "$GK_ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$(echo "$GK_ROOT" | sha256sum | cut -c1-8)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing gatekeeper and test dependencies"
  if ! "$VENV/bin/pip" install -q -e "$GK_ROOT[test]" --config-settings editable_mode=compat >"$GATEKEEPER_CACHE/pip.log" 2>&1; then
    cat "$GATEKEEPER_CACHE/pip.log" >&2
    echo "setup: pip install failed (log above)" >&2
    exit 1
  fi
  rm -f "$VENV"/.gatekeeper-*
  touch "$stamp"
fi
# The example third-party plugin distributions under plugins/: installed (not editable) as any
# third party's would be, so the tests use their entry points from outside the package.
for plugin in "$GK_ROOT"/plugins/*/; do
  [ -f "$plugin/pyproject.toml" ] || continue
  name="$(basename "$plugin")"
  digest="$(cd "$plugin" && git ls-files -co --exclude-standard . 2>/dev/null | sort | xargs cat 2>/dev/null | sha256sum | cut -c1-16)"
  pstamp="$VENV/.plugin-$name-$digest"
  if [ ! -f "$pstamp" ]; then
    echo "setup: installing the plugin distribution plugins/$name"
    if ! "$VENV/bin/pip" install -q --no-deps "$plugin" >"$GATEKEEPER_CACHE/pip-plugin.log" 2>&1; then
      cat "$GATEKEEPER_CACHE/pip-plugin.log" >&2
      echo "setup: installing plugins/$name failed (log above)" >&2
      exit 1
    fi
    # Its own dependencies, except Gatekeeper itself (the checkout above is that): --no-deps
    # keeps pip from fetching a "gatekeeper" from an index.
    deps="$("$VENV/bin/python" -c 'import sys, tomllib, re
for d in tomllib.load(open(sys.argv[1], "rb")).get("project", {}).get("dependencies", []):
    if re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0].strip().lower() != "gatekeeper":
        print(d)' "$plugin/pyproject.toml")"
    if [ -n "$deps" ]; then
      mapfile -t dep_list <<<"$deps"
      if ! "$VENV/bin/pip" install -q "${dep_list[@]}" >"$GATEKEEPER_CACHE/pip-plugin.log" 2>&1; then
        cat "$GATEKEEPER_CACHE/pip-plugin.log" >&2
        echo "setup: installing the dependencies of plugins/$name failed (log above)" >&2
        exit 1
      fi
    fi
    rm -f "$VENV/.plugin-$name-"*
    touch "$pstamp"
  fi
done
export GK_PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"
# The harness is not installed with the package: run it from the checkout.
(cd "$GK_ROOT" && "$GK_PY" -m harness.deps)

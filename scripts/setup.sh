#!/usr/bin/env bash
# Idempotent set-up: a Python venv with the pinned deps, then the Delta jars (fetched once).
# Every later run works offline. Safe to run any number of times.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.profilehouse-deps"

step() { printf '\n==> %s\n' "$*"; }

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: Python >= 3.11 is required (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi

if ! command -v java >/dev/null 2>&1; then
  step "installing a Java runtime (Spark needs Java 17 or 21)"
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless
  else
    echo "error: java not found; install Java 17 or 21" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi

DEPS_HASH="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$DEPS_HASH" ]; then
  step "installing Python dependencies (pyspark is a ~450 MB download the first time)"
  "$VENV/bin/python" -m pip install --progress-bar on -q --upgrade pip
  "$VENV/bin/python" -m pip install --progress-bar on -e ".[dev]"
  echo "$DEPS_HASH" > "$STAMP"
fi

step "checking Delta jars"
"$VENV/bin/python" scripts/fetch_delta_jars.py

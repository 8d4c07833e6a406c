#!/usr/bin/env bash
# Run the test suite (real local Spark + real Delta tables). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
printf '\n==> ruff\n'
"$ROOT/.venv/bin/ruff" check lib jobs scripts tests
printf '\n==> pytest\n'
exec "$ROOT/.venv/bin/python" -m pytest "$@"

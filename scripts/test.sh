#!/usr/bin/env bash
# Run the test suite (real local Spark + real Delta tables). Extra arguments go to pytest.
#
# Two pytest-xdist workers, each with its own Spark session: one local Spark session leaves a
# fifth to a third of two cores idle (driver-side planning, Delta log reads, Python round trips), so two
# share the machine better. `--dist loadgroup` keeps the tests that share the generated data on
# one worker and each other module on one worker (tests/conftest.py), so no shared fixture is
# built twice. PROFILEHOUSE_TEST_WORKERS=0 runs everything in this process, one test at a time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
printf '\n==> ruff\n'
"$ROOT/.venv/bin/ruff" check lib jobs scripts tests
printf '\n==> pytest\n'
WORKERS="${PROFILEHOUSE_TEST_WORKERS:-2}"
exec "$ROOT/.venv/bin/python" -m pytest -n "$WORKERS" --dist loadgroup "$@"

#!/usr/bin/env bash
# Generate the demo data (if absent) and run the whole pipeline in Spark local mode.
# Extra arguments go to jobs/run_pipeline.py (e.g. --scale-factor 0.1, --regenerate).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
printf '\n==> pipeline\n'
exec "$ROOT/.venv/bin/python" jobs/run_pipeline.py --env local "$@"

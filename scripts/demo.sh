#!/usr/bin/env bash
# Generate the demo data (if absent) and run the whole pipeline in Spark local mode.
# Extra arguments go to jobs/run_pipeline.py (e.g. --scale-factor 0.1, --regenerate).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
# The PII token key: yours if set, else a random one kept (outside git) in .cache/token.key.
if [[ -z "${PROFILEHOUSE_TOKEN_KEY:-}" && -z "${PROFILEHOUSE_TOKEN_KEY_FILE:-}" ]]; then
  if [[ ! -s .cache/token.key ]]; then
    (umask 077 && "$ROOT/.venv/bin/python" -c "import secrets; print(secrets.token_hex(32))" > .cache/token.key)
  fi
  export PROFILEHOUSE_TOKEN_KEY_FILE="$ROOT/.cache/token.key"
fi
printf '\n==> pipeline\n'
exec "$ROOT/.venv/bin/python" jobs/run_pipeline.py --env local "$@"

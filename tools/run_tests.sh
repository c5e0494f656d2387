#!/usr/bin/env bash
# The project's test command: prepares .venv if needed, then runs the suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup_env.sh
exec .venv/bin/python -m pytest -q tests "$@"

#!/usr/bin/env bash
# The main job on the embedded default: prepares .venv if needed, then makes a
# synthetic ISIC-like set, converts it, trains DSNet briefly on the CPU,
# evaluates it and reports where everything went (see tools/demo.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup_env.sh
exec .venv/bin/python tools/demo.py "$@"

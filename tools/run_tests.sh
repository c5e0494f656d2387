#!/usr/bin/env bash
# The project's test command: prepares .venv if needed, then runs the suite.
# Arguments go to pytest: test files (paths of the repository) run only
# those, options (-k, -m "not slow", -x) apply to the suite; pytest.ini's
# testpaths names the suite, as a "tests" here ran all of it beside any file.
# Started with sh (dash; MMSegmentation's docs write `sh tools/dist_train.sh`):
# run again by bash, which the lines below need.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup_env.sh
# The environment setup_env.sh prepared (VENV, of the repository if relative).
# One pytest worker per core (pytest-xdist); a later -n 0 runs in one process.
# loadfile: each test file runs on one worker, so its module fixtures (the
# trainings and exports its tests share) are made once, not once per worker.
exec "${VENV:-.venv}/bin/python" -m pytest -q -n auto --dist loadfile "$@"

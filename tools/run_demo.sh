#!/usr/bin/env bash
# The main job on the embedded default: prepares .venv if needed, then makes a
# synthetic ISIC-like set, converts it, trains DSNet briefly on the CPU,
# evaluates it and reports where everything went (see tools/demo.py).
# Run from any folder: relative --config and --work-dir are of the caller's
# folder (the synthetic set is made in the repository's data/ either way).
# Started with sh (dash; MMSegmentation's docs write `sh tools/dist_train.sh`):
# run again by bash, which the lines below need.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/tools/setup_env.sh"
# The environment setup_env.sh prepared (VENV, of the repository if relative).
venv=${VENV:-.venv}
case $venv in /*) ;; *) venv="$repo/$venv" ;; esac
# This checkout's package, also where .venv's editable install is of another
# (a copy of the repository, a git worktree sharing one .venv).
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" \
  exec "$venv/bin/python" "$repo/tools/demo.py" "$@"

#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (idempotent).
# First run: ~20 min on 2 cores (mmcv 2.1.0 is compiled from source with its
# ops); later runs with pip's wheel cache: well under a minute; with an
# up-to-date .venv: instant (a stamp of the requirement files is checked).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VENV:-.venv}
stamp_src=$(cat requirements/*.txt setup.py tools/setup_env.sh | sha1sum | cut -c1-16)
stamp="$VENV/.mmseg-dsnet-$stamp_src"

if [ -f "$stamp" ] && "$VENV/bin/python" -c "import mmseg, mmcv.ops, mmseg_dsnet" 2>/dev/null; then
  exit 0
fi

echo "[setup_env] preparing $VENV (first time: mmcv compiles for ~20 min; cached: <1 min)"
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@" --disable-pip-version-check; }
# torch 2.13.0 CPU: the wheel on disk here; on other machines pip fetches it.
pip install -q torch==2.13.0 "setuptools>=77,<81" wheel numpy==1.26.4
pip install -q opencv-python==4.11.0.86 mmengine==0.10.7
# mmcv 2.1.0 is source-only on PyPI: build it against the installed torch
# (needs setuptools' pkg_resources, hence the pin above). pip caches the wheel.
if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0
fi
pip install -q -r requirements/runtime.txt -r requirements/tests.txt
pip install -q --no-build-isolation --no-deps -e .
rm -f "$VENV"/.mmseg-dsnet-*
touch "$stamp"
echo "[setup_env] ready in $(( $(date +%s) - start )) s"

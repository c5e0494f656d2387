#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (idempotent).
# Each step is printed with the seconds it took. The first install compiles
# mmcv 2.1.0 from source with its ops, in parallel through ninja (installed
# first): most of the first install's time, shorter the more cores the
# machine has. pip caches the built wheel, so later installs take under a
# minute; with an up-to-date .venv this script returns at once (a stamp of
# the requirement files and the installed versions of the pinned packages
# are checked). Figures: docs/benchmarks.md.
# Started with sh (dash; MMSegmentation's docs write `sh tools/dist_train.sh`):
# run again by bash, which the lines below need.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VENV:-.venv}
stamp_src=$(cat requirements/*.txt setup.py tools/setup_env.sh | sha1sum | cut -c1-16)
stamp="$VENV/.mmseg-dsnet-$stamp_src"

# The pins of the stack installed below, beside those of requirements/.
TORCH_PIN=torch==2.13.0
SETUPTOOLS_PIN="setuptools>=77,<81"
MMCV_PIN=mmcv==2.1.0
# Pins installed before mmcv's build (numpy, which the build compiles
# against) are read from requirements/runtime.txt, their one source.
pin_of() {
  local line
  line=$(grep -E "^$1==" requirements/runtime.txt | head -n 1 |
    cut -d'#' -f1 | tr -d ' ') || true
  [ -n "$line" ] || {
    echo "ERROR: requirements/runtime.txt pins no $1 (a $1==VERSION line); tools/setup_env.sh installs it before mmcv" >&2
    exit 1; }
  echo "$line"
}
NUMPY_PIN=$(pin_of numpy)
OPENCV_PIN=$(pin_of opencv-python)
MMENGINE_PIN=$(pin_of mmengine)
# Ready: the stamp, the stack imports, and each package installed is of the
# version pinned: a later pip install in the venv (numpy 2, another
# mmsegmentation pulled in by a dependency) kept the stamp and the imports.
ready_check='
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    from packaging.requirements import Requirement
except ImportError:  # pip always holds a copy
    from pip._vendor.packaging.requirements import Requirement
import mmseg, mmcv.ops, mmseg_dsnet
pins = [arg for arg in sys.argv[1:] if not arg.endswith(".txt")]
for path in (arg for arg in sys.argv[1:] if arg.endswith(".txt")):
    with open(path) as f:
        pins += [line.split("#")[0].strip() for line in f]
unmet = []
for pin in filter(None, pins):
    req = Requirement(pin)
    try:
        have = version(req.name)
    except PackageNotFoundError:
        have = "missing"
    if have == "missing" or not req.specifier.contains(have, prereleases=True):
        unmet.append(f"{req.name} {have} (pinned: {pin})")
if unmet:
    print("[setup_env] not as pinned: " + "; ".join(unmet))
    sys.exit(1)
'
ready() {
  [ -f "$stamp" ] && "$VENV/bin/python" -c "$ready_check" "$TORCH_PIN" \
    "$SETUPTOOLS_PIN" "$MMCV_PIN" requirements/*.txt 2>/dev/null
}
ready && exit 0
# One setup of a venv at a time: two at once (two terminals, CI jobs or
# worktrees sharing one .venv) removed each other's stamp and ran pip in
# the same venv together. The second waits, then finds it ready.
mkdir -p "$VENV"
if command -v flock >/dev/null; then
  exec 9>"$VENV/.setup_env.lock"
  if ! flock -n 9; then
    echo "[setup_env] waiting for another setup_env.sh preparing $VENV ..."
    flock 9
    ready && exit 0
  fi
fi

start=$(date +%s)
# step "what" command...: print what is happening, run it, print its time.
step() {
  local what=$1 t0
  shift
  t0=$(date +%s)
  echo "[setup_env] $what ..."
  # One ERROR line after the failed command's own output.
  "$@" || {
    local status=$?
    echo "ERROR: tools/setup_env.sh: $what failed (exit $status, see above); $VENV is not ready" >&2
    exit "$status"
  }
  echo "[setup_env] $what: done in $(( $(date +%s) - t0 )) s"
}
pip() { "$VENV/bin/python" -m pip "$@" --disable-pip-version-check; }

echo "[setup_env] preparing $VENV with $("$PYTHON" --version 2>&1) ($(nproc) cores)"
# From here on .venv is being changed: no stamp may call it complete, also
# that of other requirement files (a build for another branch that failed
# half-way, then a checkout back, found the old stamp and returned at once).
rm -f "$VENV"/.mmseg-dsnet-*
# A venv whose creation failed (no ensurepip: Debian's python3-venv missing)
# or was interrupted has a python but no pip: made again, not used as it is.
"$VENV/bin/python" -m pip --version >/dev/null 2>&1 ||
  step "creating $VENV" "$PYTHON" -m venv "$VENV"
# The build below finds ninja (and the venv's tools) on PATH.
case "$VENV" in /*) venv_bin="$VENV/bin" ;; *) venv_bin="$PWD/$VENV/bin" ;; esac
export PATH="$venv_bin:$PATH"

# torch 2.13.0's CPU build (2.13.0+cpu): PyPI's Linux torch is the CUDA
# build, which pulls GBs of nvidia-* packages. It comes from PyTorch's CPU
# index (TORCH_CPU_INDEX) unless pip's own sources already hold it (a local
# wheel store), where that index is not asked at all. setuptools < 81 keeps
# pkg_resources, which mmcv's build needs.
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
torch_index=()
pip install -q --dry-run --no-index --no-deps --ignore-installed \
  "$TORCH_PIN+cpu" >/dev/null 2>&1 ||
  torch_index=(--extra-index-url "$TORCH_CPU_INDEX")
step "torch 2.13.0 (CPU), numpy, build tools" \
  pip install -q "$TORCH_PIN+cpu" "$SETUPTOOLS_PIN" wheel "$NUMPY_PIN" \
  ${torch_index[@]+"${torch_index[@]}"}
step "opencv-python, mmengine" \
  pip install -q "$OPENCV_PIN" "$MMENGINE_PIN"
step "ninja (parallel compilation of mmcv's ops)" \
  pip install -q -r requirements/build.txt

# mmcv 2.1.0 is source-only on PyPI: it is built against the installed torch.
if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  if pip cache list 'mmcv-2.1.0*' 2>/dev/null | grep -q 'mmcv-2.1.0'; then
    what="mmcv 2.1.0 with ops, from pip's wheel cache"
  elif command -v ninja >/dev/null; then
    what="mmcv 2.1.0 with ops, compiling with ninja $(ninja --version) on $(nproc) cores (about 14 min on 2)"
  else
    what="mmcv 2.1.0 with ops, compiling one file at a time (ninja missing)"
  fi
  export MMCV_WITH_OPS=1
  step "$what" pip install --no-build-isolation "$MMCV_PIN"
fi
step "mmsegmentation and the runtime/test requirements" \
  pip install -q -r requirements/runtime.txt -r requirements/tests.txt
step "mmseg-dsnet (editable)" \
  pip install -q --no-build-isolation --no-deps -e .
touch "$stamp"
echo "[setup_env] ready in $(( $(date +%s) - start )) s"

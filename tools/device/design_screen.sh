#!/usr/bin/env bash
# One device-tool call: a design screen on the design hold-out with the fast
# trainer (tools/analysis_tools/design_sweep.py --fast): every candidate for
# every seed, all runs in one process, one CUDA stream and graph each; runs
# are stopped from the last seed when the time limit would be passed.
#
# Here, once:   ../shared/device/stage.sh
# Device call:  carry [".device_kit", "data/isic2017"], then
#               CANDIDATES="configs/...a.py configs/...b.py" SEEDS="$(seq -s ' ' 0 23)" \
#                   bash tools/device/design_screen.sh
# (a second call on the same machine needs another WORK=/tmp/...: the sweep
# refuses work dirs that hold the first call's runs)
# Back: $OUT/records.tar.gz (the design records, "(fast_train)" in device;
# the device tool brings back a limited number of files, so they come packed:
# tar xzkf records.tar.gz -C results/design --strip-components 1
# (k: a record of that name already there, of an earlier screen of the seed,
# is kept and named, exit 2, not replaced: the sweep checks only OUT/records)),
# $OUT/sweep.txt (the sweep's output), $OUT/logs.tar.gz (each run's log and
# fast_train.json), $OUT/summary.txt.
# Dry run on the CPU: PYTHON=.venv/bin/python EPOCHS=2 TRAIN_IMAGES=32 OUT=/tmp/d bash ...
# Exit status: the sweep's (1 when runs were stopped by the time limit: they
# have no record; 2 for input it refused), after the records are packed; 1
# when the records or logs could not be packed; 2, before anything runs, for
# an OUT holding an earlier call's results.
# Started with sh (dash; MMSegmentation's docs write `sh tools/dist_train.sh`):
# run again by bash, which the lines below need.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
OUT=${OUT:-work_dirs/device}
PY=${PYTHON:-python3}
EPOCHS=${EPOCHS:-30}
CROP=${CROP:-128}
SEEDS=${SEEDS:-"0 1 2 3"}
TIME_LIMIT=${TIME_LIMIT:-280}   # seconds the training loop may take
CANDIDATES=${CANDIDATES:-configs/dsnet/design/dsnet-design-e-deeper-eighth_isic2017.py}
SMALL=()
[ -n "${TRAIN_IMAGES:-}" ] && SMALL=(--train-images "$TRAIN_IMAGES")
# An earlier call's results in OUT would be overwritten (its archive: the
# records of its screen) or mixed with this call's.
for name in records.tar.gz records logs.tar.gz sweep.txt; do
  if [ -e "$OUT/$name" ]; then
    echo "ERROR: $OUT holds an earlier call's $name: it would be overwritten; give another OUT (or move it away)" >&2
    exit 2
  fi
done
mkdir -p "$OUT" || { echo "ERROR: could not make OUT $OUT (see above)" >&2; exit 2; }
# Absolute: the logs are packed from within WORK.
OUT=$(cd "$OUT" && pwd) || exit 2
if [ -f .device_kit/setup.sh ] && [ -z "${PYTHON:-}" ]; then
  source .device_kit/setup.sh || exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
stamp() { echo "[$(date +%H:%M:%S) +$((SECONDS))s] $*" | tee -a "$OUT/summary.txt"; }
WORK=${WORK:-/tmp/design_screen}
stamp "design screen: $CANDIDATES; seeds $SEEDS; $EPOCHS epochs at ${CROP}px"
# shellcheck disable=SC2086
$PY tools/analysis_tools/design_sweep.py $CANDIDATES --seeds $SEEDS \
  --epochs "$EPOCHS" --crop-size "$CROP" "${SMALL[@]}" --fast \
  --time-limit "$TIME_LIMIT" --data-root data/isic2017 \
  --work-dir "$WORK" --record-dir "$OUT/records" > "$OUT/sweep.txt" 2>&1
sweep_rc=$?
echo "design_sweep rc=$sweep_rc" | tee -a "$OUT/summary.txt"
grep "^\[fast_train\]\|: done\|: stopped\|^ERROR" "$OUT/sweep.txt" | tail -12 | tee -a "$OUT/summary.txt"
echo "records: $(ls "$OUT/records" 2>/dev/null | wc -l)" | tee -a "$OUT/summary.txt"
# A failed packing (a full disk) is no screen either: the records would not
# come back, and a cut archive would be read as the screen's.
packed=1
if [ -d "$OUT/records" ]; then
  if tar czf "$OUT/records.tar.gz" -C "$OUT" records; then
    rm -rf "$OUT/records"
  else
    packed=0
    rm -f "$OUT/records.tar.gz"
    echo "ERROR: could not pack $OUT/records into records.tar.gz (see above); the records stay in $OUT/records" | tee -a "$OUT/summary.txt" >&2
  fi
fi
# Checkpoints stay behind: the records hold what the screen needs. The logs
# come back too: a failed packing is said, and no cut archive is left.
if [ -d "$WORK" ] && ! (cd "$WORK" && find . -name '*.log' -o -name fast_train.json | tar czf "$OUT/logs.tar.gz" -T -); then
  packed=0
  rm -f "$OUT/logs.tar.gz"
  echo "ERROR: could not pack the logs of $WORK into $OUT/logs.tar.gz (see above)" | tee -a "$OUT/summary.txt" >&2
fi
stamp "done"
# A screen with runs stopped or refused is no complete one.
[ "$sweep_rc" != 0 ] || [ "$packed" = 1 ] || exit 1
exit "$sweep_rc"

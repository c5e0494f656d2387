#!/usr/bin/env bash
# One device-tool call: train the ISIC 2017 literature protocol (1500 images,
# 256x256, batch 8, 300 epochs) with tools/fast_train.py and test every
# finished run with tools/test.py; optionally profile the data path first.
#
# Here, once:   ../shared/device/stage.sh
# Device call:  carry [".device_kit", "data/isic2017"], then
#               bash tools/device/isic2017_fast_protocol.sh
#               RUNS="configs/dsnet/dsnet_isic2017.py@1" bash tools/device/...
# Everything comes back as $OUT/results.tar.gz (logs, scalars, dumped configs,
# fast_train.json, test_metrics.json, gpu_benchmark.json and the final
# checkpoints) plus
# $OUT/summary.txt. A session's 15 device minutes hold one DSNet run
# (about 8 min on an H200); results accumulate over sessions.
# Dry run on the CPU: PYTHON=.venv/bin/python EPOCHS=2 INDICES=16 OUT=/tmp/d bash ...
# Exit status: 0 when every run trained all its epochs and was tested; 1
# otherwise (a run stopped by TIME_LIMIT is kept, resumable, but not tested:
# its summary line says so); 2 for settings it cannot follow (also an OUT
# holding an earlier call's results).
# Started with sh (dash; MMSegmentation's docs write `sh tools/dist_train.sh`):
# run again by bash, which the lines below need.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
OUT=${OUT:-work_dirs/device}
PY=${PYTHON:-python3}
EPOCHS=${EPOCHS:-300}          # protocol epochs
TIME_LIMIT=${TIME_LIMIT:-510}  # seconds the training loop may take (DSNet: ~480 s on an H200)
CALL_LIMIT=${CALL_LIMIT:-600}  # the device call's limit: optional steps are skipped near it
PROFILE=${PROFILE:-0}          # 1: profile mmengine's loop and the fast loop first
RUNS=${RUNS:-"configs/dsnet/dsnet_isic2017.py@0"}
EXTRA=${EXTRA:-}               # more fast_train flags, e.g. "--val-interval 10" (official protocol)
for setting in EPOCHS TIME_LIMIT CALL_LIMIT; do
  # Whole numbers: the shell's arithmetic (timeout, the time left) takes no
  # other, and a failed sum would leave the training unrun.
  case ${!setting} in
    ''|*[!0-9]*) echo "ERROR: $setting must be a whole number (seconds or epochs), got '${!setting}'" >&2; exit 2 ;;
  esac
done
SMALL=()
if [ -n "${INDICES:-}" ]; then
  SMALL=(train_dataloader.dataset.indices=$INDICES test_dataloader.dataset.indices=$INDICES)
fi
# An earlier call's results in OUT would be overwritten (its archive: the
# runs it trained, and its training output). A runs folder alone may be
# there: runs put back to go on with EXTRA=--resume.
for name in results.tar.gz training.txt; do
  if [ -e "$OUT/$name" ]; then
    echo "ERROR: $OUT holds an earlier call's $name: it would be overwritten; give another OUT (or move it away)" >&2
    exit 2
  fi
done
mkdir -p "$OUT" || { echo "ERROR: could not make OUT $OUT (see above)" >&2; exit 2; }
if [ -f .device_kit/setup.sh ] && [ -z "${PYTHON:-}" ]; then
  source .device_kit/setup.sh || exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
stamp() { echo "[$(date +%H:%M:%S) +$((SECONDS))s] $*" | tee -a "$OUT/summary.txt"; }

if [ "$PROFILE" = 1 ]; then
  stamp "profile: mmengine loop, 1 epoch"
  timeout 120 $PY tools/train.py configs/dsnet/dsnet_isic2017.py \
    --work-dir "$OUT/profile/mmengine_loop" --no-synthetic-fallback \
    --cfg-options train_cfg.max_epochs=1 train_cfg.val_begin=2 default_hooks.checkpoint.save_best=None train_dataloader.num_workers=8 \
    default_hooks.logger.interval=20 "${SMALL[@]}" > "$OUT/profile_mmengine.txt" 2>&1
  stamp "profile: one step in each form"
  timeout 150 $PY tools/analysis_tools/profile_train_step.py configs/dsnet/dsnet_isic2017.py \
    --steps 40 > "$OUT/profile_train_step.txt" 2>&1
  grep "ms/step\|failed" "$OUT/profile_train_step.txt" | tee -a "$OUT/summary.txt"
fi

stamp "training: $RUNS"
timeout $((TIME_LIMIT + 90)) $PY tools/fast_train.py $RUNS \
  --work-dir "$OUT/runs" --time-limit "$TIME_LIMIT" --checkpoint-interval 50 $EXTRA \
  --cfg-options train_cfg.max_epochs=$EPOCHS "${SMALL[@]}" > "$OUT/training.txt" 2>&1
train_rc=$?
echo "fast_train rc=$train_rc" | tee -a "$OUT/summary.txt"
grep "^\[fast_train\]" "$OUT/training.txt" | tail -8 | tee -a "$OUT/summary.txt"

stamp "testing"
# One run: --work-dir is its dir; several: one sub-folder each.
# An array, one path each: a path with spaces (OUT) is one run, not two
# reported stopped while nothing is tested.
mapfile -t ALL_DIRS < <(find "$OUT/runs" -name fast_train.json -printf '%h\n' 2>/dev/null | sort)
# A run stopped by the time limit is not tested: its checkpoint is of fewer
# epochs than the protocol's, and its test_metrics.json would be collected
# (and its summary line read) as the protocol's result.
RUN_DIRS=()
runs_stopped=0
for dir in "${ALL_DIRS[@]}"; do
  if grep -q '"completed": true' "$dir/fast_train.json"; then
    RUN_DIRS+=("$dir")
  else
    runs_stopped=1
    echo "$(basename "$dir"): stopped, not tested ($(grep -o '"stopped": "[^"]*"' "$dir/fast_train.json"))" | tee -a "$OUT/summary.txt"
  fi
done
for dir in "${RUN_DIRS[@]}"; do
  ckpt=$(ls "$dir"/best_*.pth 2>/dev/null | head -1)   # selected on val, if validated
  [ -f "$ckpt" ] || ckpt=$(cat "$dir/last_checkpoint" 2>/dev/null)
  [ -f "$ckpt" ] || { echo "no checkpoint in $dir" | tee -a "$OUT/summary.txt"; continue; }
  cfg=$(ls "$dir"/*.py | head -1)
  # Only this call's test counts: a run put back to resume may hold the
  # test_metrics.json of an earlier call, read as this test's if it fails.
  rm -f "$dir/test_metrics.json"
  timeout 90 $PY tools/test.py "$cfg" "$ckpt" --work-dir "$dir" \
    --cfg-options test_dataloader.num_workers=4 "${SMALL[@]}" > "$dir/test_output.txt" 2>&1 &
done
wait
# GPU inference throughput for the leaderboard (leaderboard.py collect --gpu-json),
# when the call has time left for it.
for dir in "${RUN_DIRS[@]}"; do
  [ $((CALL_LIMIT - SECONDS)) -gt 40 ] || { echo "no time left for the GPU benchmark" | tee -a "$OUT/summary.txt"; break; }
  ckpt=$(cat "$dir/last_checkpoint" 2>/dev/null); [ -f "$ckpt" ] || continue
  timeout 60 $PY tools/analysis_tools/benchmark.py "$(ls "$dir"/*.py | head -1)" "$ckpt" \
    --device cuda --shape 256 256 --batch-size 32 --json > "$dir/gpu_benchmark.json" 2> "$dir/gpu_benchmark.err" \
    || rm -f "$dir/gpu_benchmark.json"
done
tests_failed=0
for dir in "${RUN_DIRS[@]}"; do
  if [ -f "$dir/test_metrics.json" ]; then
    echo "$(basename "$dir"): $(grep -o 'IoU: [0-9.]*  DSC: [0-9.]*' "$dir/test_output.txt" 2>/dev/null | head -1)" | tee -a "$OUT/summary.txt"
  else
    tests_failed=1
    echo "$(basename "$dir"): tools/test.py failed (see test_output.txt)" | tee -a "$OUT/summary.txt"
  fi
done
# The device tool brings back few, shallow files: pack the work dirs.
# A failed packing (a full disk) loses the runs: no archive, not a cut one.
packed=1
if [ -d "$OUT/runs" ]; then
  if tar czf "$OUT/results.tar.gz" -C "$OUT" runs $( [ "$PROFILE" = 1 ] && echo profile ); then
    rm -rf "$OUT/runs" "$OUT/profile"
  else
    packed=0
    rm -f "$OUT/results.tar.gz"
    echo "ERROR: could not pack $OUT/runs into results.tar.gz (see above); the runs stay in $OUT/runs" | tee -a "$OUT/summary.txt" >&2
  fi
fi
stamp "done"
if [ "$train_rc" != 0 ] || [ "$tests_failed" != 0 ] || [ "$runs_stopped" != 0 ] ||
   [ "${#ALL_DIRS[@]}" = 0 ]; then
  echo "ERROR: not every run trained all its epochs and was tested (fast_train rc=$train_rc); see summary.txt" >&2
  exit 1
fi
[ "$packed" = 1 ] || exit 1

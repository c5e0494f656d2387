#!/usr/bin/env bash
# One device-tool call: profile the training data path on the GPU, then
# train the ISIC 2017 literature protocol (1500 images, 256x256, batch 8,
# 300 epochs) for DSNet and the lightweight baselines together with
# tools/fast_train.py, and test every finished run.
#
# Run from the repo root on the GPU machine, with the kit and the converted
# data carried:   ../shared/device/stage.sh     (here, once)
#   device run, carry [".device_kit", "data/isic2017"]:
#   bash tools/device/isic2017_fast_protocol.sh
# Results go to $OUT (the device tool's folder) or work_dirs/device.
# For a dry run on the CPU: PYTHON=.venv/bin/python EPOCHS=2 INDICES=16 ...
set -u
OUT=${OUT:-work_dirs/device}
PY=${PYTHON:-python3}
EPOCHS=${EPOCHS:-300}          # protocol epochs
TIME_LIMIT=${TIME_LIMIT:-330}  # seconds the main training loop may take
RUNS=${RUNS:-"configs/dsnet/dsnet_isic2017.py@0 configs/dsnet/dsnet_isic2017.py@1 configs/egeunet/egeunet_isic2017.py configs/malunet/malunet_isic2017.py configs/dsnet/dsnet_isic2017.py@2 configs/segformer/segformer_mit-b0_isic2017.py"}
SMALL=()
if [ -n "${INDICES:-}" ]; then
  SMALL=(train_dataloader.dataset.indices=$INDICES test_dataloader.dataset.indices=$INDICES)
fi
mkdir -p "$OUT"
if [ -f .device_kit/setup.sh ] && [ -z "${PYTHON:-}" ]; then
  source .device_kit/setup.sh || exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
stamp() { echo "[$(date +%H:%M:%S) +$((SECONDS))s] $*"; }

# 0. The captured step must train exactly like the eager one.
stamp "check: CUDA graph step == eager step"
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_fast_training_cuda.py 2>&1 | tail -3

# 1. Profile: mmengine's own loop, one epoch (how much is data loading?).
stamp "profile: mmengine loop, 1 epoch"
timeout 120 $PY tools/train.py configs/dsnet/dsnet_isic2017.py \
  --work-dir "$OUT/profile/mmengine_loop" --no-synthetic-fallback \
  --cfg-options train_cfg.max_epochs=1 train_cfg.val_begin=2 train_dataloader.num_workers=8 \
  default_hooks.logger.interval=20 "${SMALL[@]}" > "$OUT/profile_mmengine.txt" 2>&1
echo "rc=$?"; grep -E "Epoch\(train\)" "$OUT/profile_mmengine.txt" | tail -3

# 2. Profile: the fast loop without and with the CUDA graph, DSNet alone.
stamp "profile: fast loop, eager"
timeout 90 $PY tools/fast_train.py configs/dsnet/dsnet_isic2017.py \
  --work-dir "$OUT/profile/fast_eager" --no-cuda-graph \
  --cfg-options train_cfg.max_epochs=2 "${SMALL[@]}" > "$OUT/profile_fast_eager.txt" 2>&1
echo "rc=$?"; grep "\[fast_train\]" "$OUT/profile_fast_eager.txt" | tail -2
stamp "profile: fast loop, CUDA graph"
timeout 90 $PY tools/fast_train.py configs/dsnet/dsnet_isic2017.py \
  --work-dir "$OUT/profile/fast_graph" \
  --cfg-options train_cfg.max_epochs=4 "${SMALL[@]}" > "$OUT/profile_fast_graph.txt" 2>&1
echo "rc=$?"; grep "\[fast_train\]" "$OUT/profile_fast_graph.txt" | tail -2

# 3. The protocol: all runs together, one CUDA stream each; runs are dropped
#    from the end of the list if the loop would pass TIME_LIMIT.
stamp "protocol: $RUNS"
timeout $((TIME_LIMIT + 120)) $PY tools/fast_train.py $RUNS \
  --work-dir "$OUT/runs" --time-limit "$TIME_LIMIT" --checkpoint-interval 50 \
  --cfg-options train_cfg.max_epochs=$EPOCHS "${SMALL[@]}" 2>&1 | tee "$OUT/protocol.txt" | grep -v "decoding training images"
echo "rc=${PIPESTATUS[0]}"

# 4. Test every finished run (tools/test.py, LesionMetric), in parallel.
stamp "testing"
for dir in "$OUT"/runs/*/; do
  ckpt="$dir/epoch_$EPOCHS.pth"
  [ -f "$ckpt" ] || { echo "no final checkpoint in $dir"; continue; }
  cfg=$(ls "$dir"/*.py | head -1)
  timeout 150 $PY tools/test.py "$cfg" "$ckpt" --work-dir "$dir" \
    --cfg-options test_dataloader.num_workers=4 "${SMALL[@]}" > "$dir/test_output.txt" 2>&1 &
done
wait
for dir in "$OUT"/runs/*/; do
  echo "$(basename $dir): $(grep -o 'IoU: [0-9.]*  DSC: [0-9.]*' $dir/test_output.txt 2>/dev/null | head -1)"
done
find "$OUT" -name "*.pth" -path "*profile*" -delete
stamp "done"

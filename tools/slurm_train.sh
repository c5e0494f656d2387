#!/usr/bin/env bash
# Training on a Slurm cluster: srun starts one task per GPU and mmengine's
# 'slurm' launcher reads the ranks from Slurm's environment.
# Usage: [GPUS=16 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] \
#        bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args]
# Pre-empted jobs: re-submit the same command with --resume; the run
# continues from the newest complete checkpoint in the work dir.
# Started with sh (dash; MMSegmentation's docs write `sh tools/dist_train.sh`):
# run again by bash, which the lines below need.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
PARTITION=${1:-}
JOB_NAME=${2:-}
CONFIG=${3:-}
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
LAUNCH_USAGE="bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args]"
source "$(dirname "$0")/launch_checks.sh"
launch_positional PARTITION "$PARTITION"
launch_positional JOB_NAME "$JOB_NAME"
launch_positional CONFIG "$CONFIG"
launch_slurm_settings
launch_own_launcher train.py slurm "${@:4}"
launch_input "config file" "$CONFIG"
set -x

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "${PYTHON:-python}" -u "$(dirname "$0")/train.py" "${CONFIG}" \
    --launcher slurm "${@:4}"

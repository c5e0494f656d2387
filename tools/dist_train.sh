#!/usr/bin/env bash
# Distributed training with torchrun (torch.distributed.run; mmengine's
# 'pytorch' launcher). One process per GPU; on a CPU-only host the processes
# use the gloo backend (see docs/reliability.md).
# Single node:  bash tools/dist_train.sh CONFIG GPUS [train.py args]
# Multi-node:   run on every node, with the same MASTER_ADDR and PORT:
#               NNODES=2 NODE_RANK=0|1 MASTER_ADDR=10.0.0.1 PORT=29500 \
#               bash tools/dist_train.sh CONFIG GPUS_PER_NODE [args]
# PYTHON selects the interpreter (default: python on PATH).
# Started with sh (dash; MMSegmentation's docs write `sh tools/dist_train.sh`):
# run again by bash, which the lines below need.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -e
CONFIG=${1:-}
GPUS=${2:-}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-}  # 127.0.0.1 on one node
LAUNCH_USAGE="bash tools/dist_train.sh CONFIG GPUS [train.py args]"
source "$(dirname "$0")/launch_checks.sh"
launch_positional CONFIG "$CONFIG"
launch_positional GPUS "$GPUS"
launch_dist_settings
launch_input "config file" "$CONFIG"

# exec: a stop sent to this script (kill PID) reaches torchrun, which
# passes it on to the processes (they run in sessions of their own), instead
# of ending the script alone while the run went on. mmseg_dsnet's torchrun
# ends with the failed process's status and one ERROR line, not torchrun's
# traceback and exit 1 (mmseg_dsnet/engine/torchrun.py).
PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
exec "${PYTHON:-python}" -m mmseg_dsnet.engine.torchrun \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"

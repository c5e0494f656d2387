# Checks of the arguments and settings of the launch scripts, sourced by
# dist_train.sh, dist_test.sh, slurm_train.sh and slurm_test.sh. Without
# them a missing argument or a setting that is no number reached torchrun
# (a Python traceback, exit 1) or srun (a job of an empty partition or
# config) as it was.
# Before sourcing: LAUNCH_USAGE, the script's usage line.

# launch_error MESSAGE: print it and the usage line, exit 2.
launch_error() {
  echo "ERROR: $1" >&2
  echo "usage: $LAUNCH_USAGE" >&2
  exit 2
}

# launch_positional NAME VALUE: a required argument, given and no option
# (a forgotten GPUS put the first option there, e.g. --work-dir).
launch_positional() {
  case $2 in
    '') launch_error "$1 is missing" ;;
    -[0-9]*) ;;  # a negative number: the checks of numbers name it
    -*) launch_error "$1 is missing: '$2' is an option, not $1" ;;
  esac
}

# launch_whole NAME VALUE MIN [MAX]: a whole number from MIN (to MAX).
launch_whole() {
  case $2 in
    ''|*[!0-9]*) launch_error "$1 must be a whole number, got '$2'" ;;
  esac
  # 10# reads 08 as eight, not as a bad octal number.
  if [ -n "${4:-}" ]; then
    (( ${#2} <= 9 && 10#$2 >= $3 && 10#$2 <= $4 )) ||
      launch_error "$1 must be from $3 to $4, got '$2'"
  else
    (( ${#2} <= 9 && 10#$2 >= $3 )) ||
      launch_error "$1 must be at least $3, got '$2'"
  fi
}

# dist_train.sh, dist_test.sh: GPUS (processes per node) and torchrun's
# settings.
launch_dist_settings() {
  launch_whole GPUS "$GPUS" 1
  launch_whole NNODES "$NNODES" 1
  launch_whole NODE_RANK "$NODE_RANK" 0 $((10#$NNODES - 1))
  launch_whole PORT "$PORT" 1 65535
  if (( 10#$NNODES > 1 )); then
    # The default is each node's own address: every node but the first
    # waited for a master of its own until the rendezvous timed out.
    [ -n "$MASTER_ADDR" ] || launch_error "MASTER_ADDR is not set: with \
NNODES=$NNODES every node needs the address of node 0"
  fi
  MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
}

# slurm_train.sh, slurm_test.sh: the numbers given to srun.
launch_slurm_settings() {
  launch_whole GPUS "$GPUS" 1
  launch_whole GPUS_PER_NODE "$GPUS_PER_NODE" 1
  launch_whole CPUS_PER_TASK "$CPUS_PER_TASK" 1
}

# launch_input WHAT PATH: the config or checkpoint is there, as the tools
# check (preflight.check_input_file) before each process would refuse it
# (N ERROR lines, then torchrun's traceback and exit 1; on Slurm, after
# the job was given its GPUs). A URL is left to the loader.
launch_input() {
  case $2 in *://*) return 0 ;; esac
  if [ -d "$2" ]; then
    echo "ERROR: $1 $2 is a folder, not a file" >&2
    exit 2
  elif [ ! -f "$2" ]; then
    echo "ERROR: $1 $2 does not exist" >&2
    exit 2
  fi
}

# launch_own_launcher TOOL LAUNCHER ARGS...: the tool's arguments (ARGS)
# hold no other --launcher (argparse also reads an abbreviation such as
# --launch=none): given after the script's own, it would win, and each
# task would run the whole run alone, all at once into the same work dir.
launch_own_launcher() {
  local tool=$1 launcher=$2 arg name shown value
  shift 2
  while [ $# -gt 0 ]; do
    arg=$1
    shift
    name=${arg%%=*}
    case $name in --la*) ;; *) continue ;; esac
    [[ --launcher == "$name"* ]] || continue
    if [[ $arg == *=* ]]; then
      value=${arg#*=} shown=$arg
    else
      value=${1:-} shown="$arg${1:+ $1}"
    fi
    [ "$value" = "$launcher" ] || launch_error "'$shown' among the $tool \
arguments: the script gives --launcher $launcher (one task per GPU); with \
another each task would run alone, on all the data, into the same work \
dir; leave out --launcher"
  done
}

#!/usr/bin/env bash
# One node, N processes through Open MPI's mpirun.
#   usage: launch/mpirun_local.sh [-n N] PROGRAM RECIPE [ARGS...]
#   e.g.   launch/mpirun_local.sh -n 8 build/apps/drwkv_train recipes/drwkv_b2_imagenet256.yaml
# N defaults to $NP, else the number of GPUs (nvidia-smi), else 2. With GPUs each rank takes the GPU of
# its local rank (NCCL backend); without, the MPI backend runs on CPUs. The rendezvous is MPI unless
# DRWKV_RENDEZVOUS says otherwise. Per-rank logs: $DRWKV_LOG_DIR/rank<R>.log (default
# logs/<date>-<time>); rank 0 also prints to the terminal. Other DRWKV_* and NCCL_* variables in the
# environment reach every rank.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
np=${NP:-}
if [[ "${1:-}" == "-n" ]]; then
  np=$2
  shift 2
fi
if [[ $# -lt 2 ]]; then
  sed -n '2,9p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
program=$1
recipe=$2
shift 2
if [[ -z "$np" ]]; then
  np=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  [[ "$np" -gt 0 ]] || np=2
fi

export NCCL_NVLS_ENABLE=0  # NVLink SHARP multicast stays off on our machines
export DRWKV_LOG_DIR=${DRWKV_LOG_DIR:-logs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$DRWKV_LOG_DIR"
flags=(-np "$np" --bind-to none --map-by slot)
if [[ "$(id -u)" == 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [[ "$np" -gt "$(nproc)" ]]; then
  flags+=(--oversubscribe)
fi
echo "mpirun_local: $np processes of $program $recipe; logs in $DRWKV_LOG_DIR" >&2
exec mpirun "${flags[@]}" "$here/rank_exec.sh" "$program" "$recipe" "$@"

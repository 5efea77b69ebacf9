#!/usr/bin/env bash
# The body of the Slurm batch templates (slurm_one_node.sbatch, slurm_multi_node.sbatch): sets the
# environment of the run and execs the job step. Runs inside an allocation.
#   usage: slurm_run.sh PROGRAM RECIPE [ARGS...]
# Variables (all optional):
#   DRWKV_RDZV        file | tcp | mpi (default: tcp)
#                       file: rank 0 writes the NCCL id into $DRWKV_SHARED_DIR/rdzv/slurm-JOB.STEP/;
#                             DRWKV_SHARED_DIR must be visible from every node (default: the submit
#                             directory)
#                       tcp:  rank 0 serves the id on the job's first node, port $DRWKV_PORT (default
#                             20000 + job id mod 10000)
#                       file and tcp need no MPI: plain srun, no PMIx required.
#                       mpi:  MPI broadcasts the id; started by srun --mpi=pmix when Slurm has PMIx,
#                             else by mpirun inside the allocation
#   DRWKV_BACKEND     auto | nccl | mpi (default auto: NCCL with GPUs; use mpi for CPU runs, with
#                     DRWKV_RDZV=mpi)
#   DRWKV_LOG_DIR     per-rank logs rank<R>.log (default: $SLURM_SUBMIT_DIR/logs/<job name>-<job id>)
#   DRWKV_LAUNCHER    srun | mpirun, to force the launcher of the mpi route
# Every task sees all GPUs of its node and takes the one of its local rank (one task per GPU:
# --ntasks-per-node = GPUs per node).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,22p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
: "${SLURM_JOB_ID:?slurm_run.sh runs inside a Slurm allocation (sbatch or salloc)}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
program=$1
shift

export NCCL_NVLS_ENABLE=0  # NVLink SHARP multicast stays off on our machines
export DRWKV_LOG_DIR=${DRWKV_LOG_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/logs/${SLURM_JOB_NAME:-drwkv}-$SLURM_JOB_ID}
mkdir -p "$DRWKV_LOG_DIR"
rdzv=${DRWKV_RDZV:-tcp}
ntasks=${SLURM_NTASKS:?the allocation must give a task count (--ntasks or --ntasks-per-node)}
step=(srun --kill-on-bad-exit=1 --ntasks="$ntasks" --output="$DRWKV_LOG_DIR/rank%t.log")

case "$rdzv" in
  file)
    shared=${DRWKV_SHARED_DIR:-${SLURM_SUBMIT_DIR:-$PWD}}
    export DRWKV_RENDEZVOUS="file:$shared/rdzv"
    ;;
  tcp)
    head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    export DRWKV_RENDEZVOUS="tcp://$head:${DRWKV_PORT:-$((20000 + SLURM_JOB_ID % 10000))}"
    ;;
  mpi)
    export DRWKV_RENDEZVOUS=mpi
    launcher=${DRWKV_LAUNCHER:-}
    if [[ -z "$launcher" ]]; then
      if srun --mpi=list 2>&1 | grep -q pmix; then launcher=srun; else launcher=mpirun; fi
    fi
    if [[ "$launcher" == srun ]]; then
      step+=(--mpi=pmix)
    else
      # mpirun reads the allocation from Slurm and starts its daemons with srun
      step=(mpirun -np "$ntasks" --bind-to none "$here/rank_exec.sh")
      [[ "$(id -u)" == 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
    ;;
  *)
    echo "slurm_run.sh: DRWKV_RDZV='$rdzv': expected file, tcp or mpi" >&2
    exit 2
    ;;
esac

echo "slurm_run: job $SLURM_JOB_ID, $ntasks tasks on ${SLURM_JOB_NUM_NODES:-1} node(s) ($SLURM_JOB_NODELIST)," \
  "rendezvous $DRWKV_RENDEZVOUS, backend ${DRWKV_BACKEND:-auto}, logs in $DRWKV_LOG_DIR" >&2
exec "${step[@]}" "$program" "$@"

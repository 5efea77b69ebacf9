#!/usr/bin/env bash
# Runs one rank of a distributed job: writes its output to $DRWKV_LOG_DIR/rank<R>.log (rank 0 also to
# the terminal) and execs the program. The rank comes from the launcher: Open MPI's mpirun, a PMI
# launcher, or srun. Without DRWKV_LOG_DIR the output is left alone.
#   usage: rank_exec.sh PROGRAM [ARGS...]
set -euo pipefail
rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${SLURM_PROCID:-0}}}
if [[ -n "${DRWKV_LOG_DIR:-}" ]]; then
  mkdir -p "$DRWKV_LOG_DIR"
  log="$DRWKV_LOG_DIR/rank$rank.log"
  if [[ "$rank" == 0 ]]; then
    exec > >(tee -a "$log") 2>&1
  else
    exec >>"$log" 2>&1
  fi
fi
exec "$@"

#!/usr/bin/env bash
# Runs the Slurm launch templates for real on this machine: installs Debian's slurm-wlm and munge when
# missing (apt), writes a one-node slurm.conf (loopback, no cgroups: proctrack/linuxproc, task/none,
# no accounting) into a temporary directory, starts munged, slurmctld and slurmd on private ports and
# sockets (nothing under /etc is changed), and submits launch/slurm_one_node.sbatch four times with
# 2 tasks running dist_smoke (tests/dist/dist_smoke_main.cpp):
#   mpi   CPU (MPI) backend: bootstrap, MPI rendezvous, collectives, one GradReducer step; once
#         through srun --mpi=pmix and once through mpirun inside the allocation
#   file  plain srun, no MPI_Init: bootstrap from SLURM_*, NCCL-id exchange through a directory
#   tcp   plain srun, no MPI_Init: the same through rank 0's TCP server
# and checks each job's exit state, its per-rank logs and that both ranks printed the same checksum.
# Daemons and files are removed at exit. Needs root (daemons, apt); exits 77 (skipped) otherwise.
#   usage: tools/slurm_test.sh [BUILD_DIR]     (dist_smoke must be built: ninja -C build dist_smoke)
set -euo pipefail
start_time=$SECONDS
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-${DRWKV_BUILD_DIR:-$root/build}}" && pwd)
smoke=$build/tests/dist/dist_smoke
if [[ "$(id -u)" != 0 ]]; then
  echo "slurm_test: needs root to run the Slurm daemons; skipped" >&2
  exit 77
fi
if [[ ! -x "$smoke" ]]; then
  echo "slurm_test: $smoke not found: build it first (ninja -C $build dist_smoke)" >&2
  exit 2
fi

# ---- install ------------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm_test: installing slurm-wlm and munge (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
install_s=$((SECONDS - start_time))

# ---- configuration --------------------------------------------------------------------------------------
work=$(mktemp -d /tmp/drwkv-slurm.XXXXXX)
chmod 755 "$work"
node=$(hostname -s)
cpus=$(nproc)
pids=()
cleanup() {
  local rc=$?
  if [[ -n "${SLURM_CONF:-}" ]]; then scancel --quiet --full "--name=drwkv-slurm-test" 2>/dev/null || true; fi
  # the daemons run in the foreground as children of this script: stop them in reverse order
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if [[ $rc != 0 ]]; then
    echo "slurm_test: FAILED (status $rc); daemon logs:" >&2
    tail -n 20 "$work"/*.log "$work"/*.console >&2 2>/dev/null || true
  fi
  if [[ -n "${DRWKV_SLURM_KEEP:-}" ]]; then echo "slurm_test: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# munge: a private key and socket
dd if=/dev/urandom of="$work/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge.key"
mkdir -p "$work/munge"
munged --foreground --force --key-file="$work/munge.key" --socket="$work/munge/munge.socket" \
  --pid-file="$work/munged.pid" --log-file="$work/munged.log" --seed-file="$work/munge/seed" \
  >"$work/munged.console" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [[ -S "$work/munge/munge.socket" ]] && break; sleep 0.1; done

mkdir -p "$work/state" "$work/spool" "$work/logs"
cat >"$work/slurm.conf" <<EOF
ClusterName=drwkvtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF=$work/slurm.conf

slurmctld -D -i -f "$SLURM_CONF" >"$work/slurmctld.console" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$work/slurmd.console" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
  state=$(sinfo -h -o %t 2>/dev/null || true)
  [[ "$state" == idle ]] && break
  sleep 0.5
done
if [[ "$(sinfo -h -o %t)" != idle ]]; then
  echo "slurm_test: the node did not become idle: $(sinfo 2>&1)" >&2
  exit 1
fi
daemons_s=$((SECONDS - start_time - install_s))
echo "slurm_test: slurmctld and slurmd up on $node ($cpus CPUs); srun --mpi: $(srun --mpi=list 2>&1 | tr -s ' \n' ' ')" >&2

# ---- jobs ---------------------------------------------------------------------------------------------
run_job() {
  local route=$1 backend=$2 launcher=${3:-}
  local logs=$work/logs/$route${launcher:+-$launcher}
  local t0=$SECONDS
  mkdir -p "$logs"
  local job
  job=$(cd "$work" && DRWKV_ROOT=$root DRWKV_RDZV=$route DRWKV_BACKEND=$backend DRWKV_LOG_DIR=$logs \
    DRWKV_LAUNCHER=$launcher \
    DRWKV_SHARED_DIR=$work/shared DRWKV_PORT=$((29700 + RANDOM % 200)) DRWKV_RENDEZVOUS_TIMEOUT=60 \
    sbatch --parsable --job-name=drwkv-slurm-test --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
    --gpus-per-node=0 --time=5 --output="$logs/batch.out" "$root/launch/slurm_one_node.sbatch" "$smoke" none)
  # poll (sbatch --wait polls at up to 10 s intervals)
  local state="" rc=1
  for _ in $(seq 1 400); do
    state=$(scontrol show job "$job" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    case "$state" in
      COMPLETED) rc=0; break ;;
      FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) break ;;
    esac
    sleep 0.3
  done
  local sums
  sums=$(cat "$logs"/rank0.log "$logs"/rank1.log 2>/dev/null | sed -n 's/^dist_smoke OK rank \([01]\)\/2 checksum \(.*\)$/\2/p' |
    sort -u)
  local oks
  oks=$(cat "$logs"/rank*.log 2>/dev/null | grep -c '^dist_smoke OK rank [01]/2' || true)
  if [[ $rc != 0 || "$oks" != 2 || $(echo "$sums" | wc -l) != 1 ]]; then
    echo "slurm_test: job '$route' (Slurm job $job) ended in state '$state', $oks of 2 ranks OK; its logs:" >&2
    for f in "$logs"/*; do echo "== $f" >&2; cat "$f" >&2; done
    exit 1
  fi
  local seen
  seen=$(sed -n 's/.* launcher \([a-z]*\) backend.*/\1/p' "$logs/rank1.log" | head -n 1)
  echo "slurm_test: job '$route${launcher:+ via $launcher}' OK in $((SECONDS - t0)) s: 2 ranks (variables of $seen, backend $backend)," \
    "per-rank logs, checksum $sums" >&2
}

# drwkv_train itself: 2 CPU ranks (MPI backend) train a tiny model on packed Fashion-MNIST
run_train_job() {
  local launcher=${1:-}
  local logs=$work/logs/train${launcher:+-$launcher} t0=$SECONDS
  mkdir -p "$logs"
  local data=$work/fmnist
  [[ -f $data/index.json ]] || "$build/apps/drwkv_data" pack fmnist --split test --out "$data" >"$logs/pack.log" 2>&1 ||
    { echo "slurm_test: packing Fashion-MNIST failed:" >&2; cat "$logs/pack.log" >&2; exit 1; }
  cat >"$work/train.yaml" <<YAML
run: {out_dir: $work/run${launcher:+-$launcher}, max_steps: 4, device: cpu}
model: {depth: 3, width: 32, patch: 4, in_channels: 1, image_size: 32, num_classes: 10}
data: {path: $data, threads: 1}
train: {global_batch: 8, micro_batch: 4}
checkpoint: {every_steps: 2}
log: {every_steps: 1}
sample: {every_steps: 0}
dist: {backend: mpi}
YAML
  local job
  job=$(cd "$work" && DRWKV_ROOT=$root DRWKV_RDZV=mpi DRWKV_BACKEND=mpi DRWKV_LOG_DIR=$logs DRWKV_LAUNCHER=$launcher \
    sbatch --parsable --job-name=drwkv-train-test --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
    --gpus-per-node=0 --time=5 --output="$logs/batch.out" "$root/launch/slurm_one_node.sbatch" \
    "$build/apps/drwkv_train" "$work/train.yaml")
  local state=""
  for _ in $(seq 1 600); do
    state=$(scontrol show job "$job" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    case "$state" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
    sleep 0.5
  done
  if [[ "$state" != COMPLETED ]] || ! grep -q "weights are bit-identical on all 2 ranks" "$logs"/*.log ||
     [[ ! -f $work/run${launcher:+-$launcher}/checkpoints/ckpt-00000004.h5 ]]; then
    echo "slurm_test: training job (Slurm job $job) ended in state '$state'; its logs:" >&2
    for f in "$logs"/*; do echo "== $f" >&2; cat "$f" >&2; done
    exit 1
  fi
  echo "slurm_test: drwkv_train job${launcher:+ via $launcher} OK in $((SECONDS - t0)) s: 2 ranks, identical weights, checkpoint at step 4" >&2
}

run_job mpi mpi          # srun --mpi=pmix where Slurm has PMIx, as here
run_job mpi mpi mpirun   # mpirun inside the allocation: the fallback without PMIx
run_job file none
run_job tcp none
if [[ -x $build/apps/drwkv_train && -d /usr/share/datasets/fashion-mnist ]]; then
  run_train_job
else
  echo "slurm_test: drwkv_train or dataset-fashion-mnist missing: training job not run" >&2
fi
echo "slurm_test: PASSED in $((SECONDS - start_time)) s (install $install_s s, daemons $daemons_s s)" >&2

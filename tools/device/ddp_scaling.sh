#!/usr/bin/env bash
# Data-parallel scaling on one multi-GPU host: DRWKV-B/2, 256 tokens, fixed per-GPU batch, on 1 GPU and
# on all GPUs, with NCCL's default transports (NVLink) and with the network path only
# (NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1); plus all-reduce bandwidth. Synthetic latents (4×32×32 f16).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tools/device/build.sh 2>&1 | grep -E "error|FAILED" | head -20
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
b=build-device
ngpu=$(nvidia-smi -L | wc -l)
per_gpu=${PER_GPU:-256}
steps=${STEPS:-30}
python3 - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
n = 16384
np.save("/tmp/lat.npy", (rng.standard_normal((n, 4, 32, 32)) * 0.8).astype(np.float16))
np.save("/tmp/lab.npy", rng.integers(0, 1000, n).astype(np.int64))
PY
$b/apps/drwkv_data pack npy --latents /tmp/lat.npy --labels /tmp/lab.npy --out /tmp/synth 2>&1 | tail -1
train() {  # ranks global_batch tag [env...]
  local n=$1 gb=$2 tag=$3; shift 3
  env "$@" mpirun -np $n --bind-to none -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH $(for e in "$@"; do echo "-x ${e%%=*}"; done) \
    $b/apps/drwkv_train recipes/drwkv_b2_imagenet256.yaml --set data.path=/tmp/synth --set run.out_dir=/tmp/run-$tag \
    --set run.max_steps=$steps --set train.global_batch=$gb --set train.micro_batch=$per_gpu --set log.every_steps=10 \
    --set sample.every_steps=0 --set checkpoint.every_steps=0 --set data.threads=4 ${EXTRA:-} > $out/train-$tag.log 2>&1
  echo "$tag: $(grep -E '^\[drwkv.*step (20|30) ' $out/train-$tag.log | tail -1 | cut -d'|' -f6,8)  ($(grep -c 'bit-identical' $out/train-$tag.log) replica check)"
}
train 1 $per_gpu 1gpu
if (( ngpu >= 4 )); then
  train 2 $((per_gpu * 2)) 2gpu-nvlink
  train 2 $((per_gpu * 2)) 2gpu-net NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1
fi
train $ngpu $((per_gpu * ngpu)) ${ngpu}gpu-nvlink
train $ngpu $((per_gpu * ngpu)) ${ngpu}gpu-net NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1
EXTRA="--set dist.reduce_dtype=bf16" train $ngpu $((per_gpu * ngpu)) ${ngpu}gpu-net-bf16 NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1
mpirun -np $ngpu --bind-to none -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH $b/bench/allreduce_gpu_bench 2>&1 | tail -9
NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 mpirun -np $ngpu --bind-to none -x NCCL_NVLS_ENABLE -x NCCL_P2P_DISABLE -x NCCL_SHM_DISABLE -x LD_LIBRARY_PATH $b/bench/allreduce_gpu_bench 2>&1 | tail -9
grep -h "data parallel\|gradient buckets" $out/train-*.log | head -3

#!/usr/bin/env bash
# ZeRO-1 on every GPU of one host: the NCCL test program under mpirun, then DRWKV-B/2 (256 tokens, 64
# images per GPU, synthetic latents) with replicated and with sharded AdamW: images/s, peak GPU memory,
# the replica check, and the final checkpoint (whose moments ZeRO-1 gathers from the shards).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
absl=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$absl:${LD_LIBRARY_PATH:-}
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DDRWKV_CUDA=ON -Dabsl_DIR=$absl/cmake/absl >/dev/null 2>&1
ninja -C build-device drwkv_train drwkv_data_main dist_nccl_gpu_test 2>&1 | grep -E "error|FAILED" | head -20
b=build-device
n=$(nvidia-smi -L | wc -l)
mpi() { mpirun -np $n --bind-to none -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH "$@"; }
mpi $b/tests/dist/dist_nccl_gpu_test 2>&1 | grep -E "PASSED|FAILED|ran\." | sort | uniq -c
python3 - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
np.save("/tmp/lat.npy", (rng.standard_normal((2048, 4, 32, 32)) * 0.8).astype(np.float16))
np.save("/tmp/lab.npy", rng.integers(0, 1000, 2048).astype(np.int64))
PY
$b/apps/drwkv_data pack npy --latents /tmp/lat.npy --labels /tmp/lab.npy --out /tmp/synth 2>&1 | tail -1
for z in false true; do
  mpi $b/apps/drwkv_train recipes/drwkv_b2_imagenet256.yaml --set dist.zero1=$z --set data.path=/tmp/synth \
    --set run.out_dir=/tmp/run-$z --set run.max_steps=${STEPS:-12} --set train.global_batch=$((64 * n)) \
    --set train.micro_batch=64 --set log.every_steps=6 --set sample.every_steps=0 --set checkpoint.every_steps=0 \
    > $out/zero1-$z.log 2>&1
  echo "dist.zero1=$z (exit $?):"
  grep -E "ZeRO-1 over|step ${STEPS:-12} |bit-identical|done:|ERROR" $out/zero1-$z.log | cut -c1-220
done

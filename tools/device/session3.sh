#!/usr/bin/env bash
# Device session part B (after part A on a warm machine): training-step benchmark with a per-kernel
# breakdown, and DRWKV-S/2 through drwkv_train with the real loader (synthetic latent shards) to show
# whether the step waits on data.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
b=build-device
[[ -x $b/apps/drwkv_train ]] || tools/device/build.sh 2>&1 | grep -E "error|FAILED" | head
if [[ "${SKIP_STEP_BENCH:-0}" != 1 ]]; then
  timeout 300 $b/bench/train_step_gpu_bench --profile "$@" > $out/train_step.txt 2>&1; grep -A8 "^| model" $out/train_step.txt
fi
python3 - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
np.save("/tmp/lat.npy", (rng.standard_normal((16384, 4, 32, 32)) * 0.8).astype(np.float16))
np.save("/tmp/lab.npy", rng.integers(0, 1000, 16384).astype(np.int64))
PY
$b/apps/drwkv_data pack npy --latents /tmp/lat.npy --labels /tmp/lab.npy --out /tmp/synth 2>&1 | tail -1
$b/apps/drwkv_train recipes/drwkv_s2_imagenet256.yaml --set data.path=/tmp/synth --set run.out_dir=/tmp/s2 \
  --set run.max_steps=40 --set train.global_batch=256 --set train.micro_batch=256 --set log.every_steps=10 \
  --set sample.every_steps=0 --set checkpoint.every_steps=0 --set data.threads=4 > $out/s2_train.log 2>&1
grep -E "step (10|20|30|40) " $out/s2_train.log | cut -c1-220

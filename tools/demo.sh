#!/usr/bin/env bash
# The README demo: build, pack Fashion-MNIST into shards, train the class-conditional DRWKV of
# recipes/fmnist_tiny.yaml for a bounded time on whatever is there (the GPU when present, else the CPU),
# printing progress and writing checkpoints and sample grids under runs/fmnist_tiny/.
#   DRWKV_DEMO_MINUTES  wall-clock bound (default 10; 0 = the recipe's full 20k steps)
#   extra arguments go to drwkv_train (e.g. --set optimizer.lr=2e-4, --resume auto)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${DRWKV_BUILD_DIR:-build}
minutes=${DRWKV_DEMO_MINUTES:-10}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${DRWKV_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" --target drwkv_train drwkv_data_main drwkv_sample drwkv_ckpt
if [[ ! -f datasets/fmnist/index.json ]]; then
  "$build/apps/drwkv_data" pack fmnist --split train --out datasets/fmnist
fi
args=(--set "run.max_minutes=$minutes")
if ! nvidia-smi -L >/dev/null 2>&1; then
  # the CPU: a smaller batch so progress shows every few seconds, grids every 200 steps
  args+=(--set train.global_batch=32 --set train.micro_batch=32 --set optimizer.warmup_steps=50 --set log.every_steps=10
         --set sample.every_steps=200 --set sample.steps=50 --set checkpoint.every_steps=200)
fi
exec "$build/apps/drwkv_train" recipes/fmnist_tiny.yaml "${args[@]}" "$@"

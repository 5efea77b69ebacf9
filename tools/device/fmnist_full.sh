#!/usr/bin/env bash
# The demo recipe at full length on the GPU machine: pack Fashion-MNIST from the carried IDX files
# (.deps/fmnist), train recipes/fmnist_tiny.yaml, keep the metrics, grids and the last checkpoint's report.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
tools/device/build.sh 2>&1 | grep -E "warning|error|FAILED" | head -20
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
b=build-device/apps
$b/drwkv_data pack fmnist --input .deps/fmnist --split train --out datasets/fmnist 2>&1 | tail -2
$b/drwkv_train recipes/fmnist_tiny.yaml --set run.max_minutes=${MINUTES:-8} --set run.out_dir=runs/fmnist "$@" 2>&1 |
  grep -v "^  " | tee $out/train.log | grep -E "step [0-9]*000 |wrote|checkpoint|done|model|data|ERROR|FATAL" | tail -40
cp runs/fmnist/metrics.jsonl $out/ 2>/dev/null
last=$(ls runs/fmnist/samples/*.png | tail -1); cp "$last" $out/grid_last.png; ls runs/fmnist/samples
ck=$(ls runs/fmnist/checkpoints/ckpt-*.h5 | tail -1)
$b/drwkv_sample "$ck" --labels 0,1,2,3,4,5,6,7,8,9 --per-label 10 --sampler ddpm --steps 250 --cfg-scale 3 --seed 7 \
  --out $out/grid_ddpm250.png --raw $out/samples.h5 2>&1 | tail -2
$b/drwkv_ckpt verify "$ck"

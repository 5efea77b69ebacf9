#!/usr/bin/env bash
# One device call for the seventh session's change (gradients in segments allocated only from backward to
# the optimizer step): build, every GPU-labelled test, the training step for all configurations, and
# H/2 with the old flat gradient buffer and without EMA in the same call. Logs go to $OUT.
source "$(dirname "$0")/env.sh"
OUT=$out tools/device/gpu_tests.sh
timeout 300 $b/bench/train_step_gpu_bench > $out/train_step.txt 2>&1; grep -A7 "^| model" $out/train_step.txt
for extra in --flat-grads --no-ema "--flat-grads --no-ema" --recompute-elementwise; do
  timeout 120 $b/bench/train_step_gpu_bench --configs H/2:64:32 $extra > "$out/h2_${extra// /_}.txt" 2>&1
  grep "ms/step" "$out/h2_${extra// /_}.txt"
done
echo "total $(( $(date +%s) - t0 )) s"

#!/usr/bin/env bash
# One device call for the sixth session's changes (gradients overwritten after zero_grads instead of
# cleared; the spatial residual's and the channel norm's backwards in one kernel, h1 not kept; the
# channel mix's residual with the next block's first norm, forward and backward): build, every
# GPU-labelled test, the fused-op table, the training step for all configurations, H/2 with elementwise
# recomputation, and the per-kernel breakdown of H/2. Logs go to $OUT.
source "$(dirname "$0")/env.sh"
OUT=$out tools/device/gpu_tests.sh
timeout 120 $b/bench/drwkv_ops_gpu_bench > $out/ops.txt 2>&1; grep -E "^\| (gated|layernorm)" $out/ops.txt
timeout 300 $b/bench/train_step_gpu_bench > $out/train_step.txt 2>&1; grep -A7 "^| model" $out/train_step.txt
timeout 120 $b/bench/train_step_gpu_bench --configs H/2:64:32 --recompute-elementwise > $out/h2_recompute.txt 2>&1
grep "ms/step" $out/h2_recompute.txt
timeout 200 $b/bench/train_step_gpu_bench --configs H/2:64:32 --profile > $out/profile.txt 2>&1
grep -E "ms/step|\(all\)|gemm|adamw|gated|layernorm" $out/profile.txt | grep -v "^|"
echo "total $(( $(date +%s) - t0 )) s"

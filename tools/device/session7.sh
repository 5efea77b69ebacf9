#!/usr/bin/env bash
# One device call for the fifth session's changes (the channel mix's receptance gate inside its gated
# residual, the spatial gate's backward from its output, the spatial residual and the channel norm in one
# kernel; micro-batches in the training-step benchmark): build, every GPU-labelled test, the fused-op
# table, the training step for all configurations, H/2 with elementwise recomputation (MICRO=1: also with
# two micro-batches per step), and the per-kernel breakdown of B/2 and H/2. Logs go to $OUT.
source "$(dirname "$0")/env.sh"
OUT=$out tools/device/gpu_tests.sh
timeout 120 $b/bench/drwkv_ops_gpu_bench > $out/ops.txt 2>&1; grep -E "^\| (gated|sigmoid|layernorm)" $out/ops.txt
timeout 300 $b/bench/train_step_gpu_bench > $out/train_step.txt 2>&1; grep -A7 "^| model" $out/train_step.txt
flags_list=("--recompute-elementwise")
[ "${MICRO:-0}" = 1 ] && flags_list+=("--micro-batches 2" "--micro-batches 2 --recompute-elementwise")
for flags in "${flags_list[@]}"; do
  timeout 120 $b/bench/train_step_gpu_bench --configs H/2:64:32 $flags >> $out/h2_memory.txt 2>&1
done
grep "ms/step" $out/h2_memory.txt
timeout 200 $b/bench/train_step_gpu_bench --configs B/2:256:32,H/2:64:32 --profile > $out/profile.txt 2>&1
grep -E "ms/step|\(all\)|gated|sigmoid|layernorm" $out/profile.txt | grep -v "^|"
echo "total $(( $(date +%s) - t0 )) s"

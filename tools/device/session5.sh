#!/usr/bin/env bash
# One device call for the training-step changes of the third session: build, every GPU-labelled test,
# the optimizer bandwidth table (fused AdamW + EMA), the training step for all configurations, the
# per-kernel breakdown (idle and host columns) of B/2 and H/2, and H/2 with 0 / some / all blocks
# checkpointed (model.checkpoint_blocks). Logs go to $OUT.
source "$(dirname "$0")/env.sh"
OUT=$out tools/device/gpu_tests.sh
timeout 120 $b/bench/optim_gpu_bench > $out/optim.txt 2>&1; grep -E "^\| [a-z]" $out/optim.txt
timeout 300 $b/bench/train_step_gpu_bench > $out/train_step.txt 2>&1; grep -A7 "^| model" $out/train_step.txt
timeout 200 $b/bench/train_step_gpu_bench --configs B/2:256:32,H/2:64:32 --profile > $out/train_step_profile.txt 2>&1
grep -E "\(all\)" $out/train_step_profile.txt
for n in 4 8 12 37; do
  timeout 120 $b/bench/train_step_gpu_bench --configs H/2:64:32 --checkpoint-blocks $n >> $out/h2_ckpt.txt 2>&1
done
grep "ms/step" $out/h2_ckpt.txt
echo "total $(( $(date +%s) - t0 )) s"

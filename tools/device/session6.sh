#!/usr/bin/env bash
# One device call for the fourth session's changes: build, every GPU-labelled test, the fused-op table
# (q-shift walks), the optimizer table (AdamW's scalar paths share one element update), the training
# step for all configurations, H/2 with elementwise recomputation alone and with N checkpointed blocks,
# the per-kernel breakdown of B/2 and H/2 (H/2 also with recomputation), and a short Fashion-MNIST run
# through drwkv_train (MINUTES=0 skips it). Logs go to $OUT.
source "$(dirname "$0")/env.sh"
OUT=$out tools/device/gpu_tests.sh
timeout 120 $b/bench/drwkv_ops_gpu_bench > $out/ops.txt 2>&1; grep -E "^\| qshift" $out/ops.txt
timeout 120 $b/bench/optim_gpu_bench > $out/optim.txt 2>&1; grep -E "^\| [a-z]" $out/optim.txt
timeout 300 $b/bench/train_step_gpu_bench > $out/train_step.txt 2>&1; grep -A7 "^| model" $out/train_step.txt
for n in ${CKPT:-0 2 4}; do
  timeout 120 $b/bench/train_step_gpu_bench --configs H/2:64:32 --recompute-elementwise --checkpoint-blocks $n \
    >> $out/h2_recompute.txt 2>&1
done
grep "ms/step" $out/h2_recompute.txt
timeout 200 $b/bench/train_step_gpu_bench --configs B/2:256:32,H/2:64:32 --profile > $out/profile.txt 2>&1
timeout 120 $b/bench/train_step_gpu_bench --configs H/2:64:32 --recompute-elementwise --profile \
  >> $out/profile.txt 2>&1
grep -E "ms/step|\(all\)" $out/profile.txt
if [ "${MINUTES:-1}" != 0 ]; then
  mkdir -p /tmp/fmnist  # its grids and checkpoint report stay there: the device returns few files
  MINUTES=${MINUTES:-1} OUT=/tmp/fmnist tools/device/fmnist_full.sh --set run.max_steps=2000 > $out/fmnist.txt 2>&1
  grep -E "step 1000 |done|valid" $out/fmnist.txt
fi
echo "total $(( $(date +%s) - t0 )) s"

#!/usr/bin/env bash
# Bi-WKV decompositions at the shapes of the f32 bar (T = 1024): builds, runs the Bi-WKV GPU test, then
# times the automatic plan and the candidates given here (bi_wkv_gpu_bench --plan). Logs to $OUT.
source "$(dirname "$0")/env.sh"
tools/device/build.sh > "$out/build.log" 2>&1; echo "build: $(( $(date +%s) - t0 )) s"; grep -iE "warning|error" "$out/build.log" | head -5
$b/tests/kernels_bi_wkv_gpu_test > "$out/bi_wkv_gpu_test.log" 2>&1; tail -3 "$out/bi_wkv_gpu_test.log"
plans=""
for p in "$@"; do plans="$plans --plan $p"; done
for shape in 32,1024,384 32,1024,1536; do
  $b/bench/bi_wkv_gpu_bench 30 --shape $shape $plans > "$out/plans_$shape.txt" 2>&1
  sed -n '/^Decompositions/,/^$/p;/^shape  *dtype  *forward/,/^$/p' "$out/plans_$shape.txt"
done
echo "total: $(( $(date +%s) - t0 )) s"

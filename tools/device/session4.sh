#!/usr/bin/env bash
# One device call that re-measures what docs/PERF.md reports after a kernel change: build, every
# GPU-labelled test, the Bi-WKV and DRWKV fused-op benchmarks, and the training step (table for all
# configurations, then the per-kernel breakdown of DRWKV-B/2). Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
t0=$(date +%s)
tools/device/build.sh > $out/build.log 2>&1; echo "build rc=$? $(( $(date +%s) - t0 )) s"
grep -iE "warning|error" $out/build.log | head -5
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
b=build-device
ctest --test-dir $b -L gpu --output-on-failure --timeout 400 > $out/gpu_tests.log 2>&1; echo "gpu tests rc=$?"
grep -E "tests passed|tests failed|Failed|\*\*\*" $out/gpu_tests.log | tail -8
timeout 300 $b/bench/bi_wkv_gpu_bench > $out/bi_wkv.txt 2>&1; grep "^| B" $out/bi_wkv.txt | head -16
timeout 120 $b/bench/drwkv_ops_gpu_bench > $out/drwkv_ops.txt 2>&1; grep "^| [a-z]" $out/drwkv_ops.txt | head -30
timeout 300 $b/bench/train_step_gpu_bench > $out/train_step.txt 2>&1; grep -A7 "^| model" $out/train_step.txt
timeout 120 $b/bench/train_step_gpu_bench --configs B/2:256:32 --profile > $out/train_step_profile.txt 2>&1
grep -E "^\| [A-Za-z]" $out/train_step_profile.txt | tail -22
echo "total $(( $(date +%s) - t0 )) s"

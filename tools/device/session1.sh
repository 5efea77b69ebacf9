#!/usr/bin/env bash
# One device session: build, every GPU test, the fused-op and training-step benchmarks.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
tools/device/build.sh 2>&1 | grep -E "warning|error|FAILED" | head -20
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
ctest --test-dir build-device -L gpu --output-on-failure --timeout 300 > $out/gpu_tests.txt 2>&1
grep -E "Test +#|tests passed" $out/gpu_tests.txt | grep -v " Passed" ; grep -E "tests passed" $out/gpu_tests.txt
build-device/bench/drwkv_ops_gpu_bench > $out/drwkv_ops.txt 2>&1; grep -A40 "^| op" $out/drwkv_ops.txt | head -40
timeout 400 build-device/bench/train_step_gpu_bench --profile "$@" > $out/train_step.txt 2>&1; tail -80 $out/train_step.txt

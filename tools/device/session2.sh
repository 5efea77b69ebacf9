#!/usr/bin/env bash
# Device session part A: build, every GPU test, the Bi-WKV benchmark.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
tools/device/build.sh 2>&1 | grep -E "warning|error|FAILED" | head -20
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
ctest --test-dir build-device -L gpu --output-on-failure --timeout 300 > $out/gpu_tests.txt 2>&1
grep -E "Test +#" $out/gpu_tests.txt | grep -v " Passed"; grep -E "tests passed" $out/gpu_tests.txt
grep -E "Failure|Actual" $out/gpu_tests.txt | head -10
timeout 200 build-device/bench/bi_wkv_gpu_bench > $out/biwkv.txt 2>&1; grep -B2 -A40 "^| shape" $out/biwkv.txt | head -70

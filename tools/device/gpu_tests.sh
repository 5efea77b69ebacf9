#!/usr/bin/env bash
# Builds on the GPU machine and runs the GPU-labelled tests; logs go to $OUT (when set).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
start=$(date +%s)
tools/device/build.sh "$@" 2>&1 | tee "$out/build.log" | tail -30
echo "build: $(( $(date +%s) - start )) s"
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:$PWD/.deps/sys/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
ctest --test-dir build-device -L gpu --output-on-failure --timeout 600 2>&1 | tee "$out/gpu_tests.log" | tail -40

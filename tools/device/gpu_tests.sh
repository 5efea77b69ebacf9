#!/usr/bin/env bash
# Builds on the GPU machine and runs the GPU-labelled tests; full logs go to $OUT (when set), a summary
# (build time, compiler warnings, test result lines) to stdout.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
start=$(date +%s)
tools/device/build.sh "$@" > "$out/build.log" 2>&1
echo "build: $(( $(date +%s) - start )) s"; grep -iE "warning|error" "$out/build.log" | head -5
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:$PWD/.deps/sys/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
ctest --test-dir build-device -L gpu --output-on-failure --timeout 600 > "$out/gpu_tests.log" 2>&1
echo "build + gpu tests: $(( $(date +%s) - start )) s"
grep -E "tests passed|tests failed|Failed|\*\*\*|Total Test" "$out/gpu_tests.log" | tail -8

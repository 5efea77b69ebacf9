#!/usr/bin/env bash
# Configures, builds (CUDA sources too when nvcc is there) and runs the whole test suite with ctest.
# GPU tests skip themselves without a GPU. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${DRWKV_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${DRWKV_CMAKE_ARGS:-} >/dev/null
cmake --build "$build"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"

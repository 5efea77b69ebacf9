#!/usr/bin/env bash
# Configures and builds drwkv on the GPU machine (Ubuntu, CUDA 13, no Abseil: uses the carried .deps/).
# Usage: tools/device/build.sh [extra cmake args]; the build goes to build-device/.
# The device keeps build-device/ between calls of one lease and copies sources with their mtimes: after a
# call that edited sources on the device itself (sed experiments), its objects are newer than the next
# call's restored sources and ninja would not rebuild them; such a next call must touch the sources first.
set -euo pipefail
cd "$(dirname "$0")/../.."
absl_lib=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu
extra_prefix=""
[ -d .deps/sys/usr ] && extra_prefix="-DCMAKE_PREFIX_PATH=$PWD/.deps/sys/usr"
export LD_LIBRARY_PATH=$absl_lib:$PWD/.deps/sys/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DDRWKV_CUDA=ON \
  -Dabsl_DIR=$absl_lib/cmake/absl $extra_prefix "$@" > build-device.configure.log 2>&1 || { tail -40 build-device.configure.log; exit 1; }
ninja -C build-device 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' | tail -60

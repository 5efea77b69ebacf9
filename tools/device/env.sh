# Sourced by the device measurement scripts: repository root as the working directory, $out (logs; from
# $OUT), $t0 (start time), $b (the build folder) and the library path of the carried Abseil.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-/tmp}
t0=$(date +%s)
b=build-device
export LD_LIBRARY_PATH=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}

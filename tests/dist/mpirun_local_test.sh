#!/usr/bin/env bash
# launch/mpirun_local.sh with 2 processes of dist_smoke: both ranks must print "dist_smoke OK" with the
# same checksum into their own log files.   usage: mpirun_local_test.sh DIST_SMOKE
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
DRWKV_LOG_DIR=$out/logs "$root/launch/mpirun_local.sh" -n 2 "$1" no-recipe
for r in 0 1; do
  grep -q "^dist_smoke OK rank $r/2 checksum" "$out/logs/rank$r.log" || { echo "rank $r: no OK line"; cat "$out/logs/rank$r.log"; exit 1; }
done
sums=$(sed -n 's/^dist_smoke OK rank .* checksum //p' "$out"/logs/rank*.log | sort -u | wc -l)
[[ "$sums" == 1 ]] || { echo "ranks disagree on the checksum"; cat "$out"/logs/rank*.log; exit 1; }
echo "mpirun_local.sh: 2 ranks OK, per-rank logs written"

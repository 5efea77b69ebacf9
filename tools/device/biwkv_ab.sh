#!/usr/bin/env bash
# A/B of a Bi-WKV kernel change in one call: A = the tree as it is, B = a copy with PATCH applied (patch
# -p1, paths relative to the repository root); both build only the Bi-WKV GPU test and benchmark. Runs
# B's GPU test (also with ENV=1 when ENV is given, for a change selected by an environment variable),
# then times A and B alternately, twice, at the T = 1024 bar shapes and the model's shape (automatic
# plan, f32 and bf16). Usage: biwkv_ab.sh PATCH [ENV]
source "$(dirname "$0")/env.sh"
case $1 in /*) patch_file=$1;; *) patch_file=$PWD/$1;; esac  # relative: to the repository root
envvar=${2:-}
targets="tests/kernels_bi_wkv_gpu_test bench/bi_wkv_gpu_bench"
# configure tree $1 into $1/$2 and build only the targets (log $3)
build_targets() {
  (cd "$1" && cmake -S . -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDRWKV_CUDA=ON \
    -Dabsl_DIR=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu/cmake/absl > /dev/null && ninja -C "$2" $targets) > "$3" 2>&1 \
    || { tail -30 "$3"; exit 1; }
}
build_targets "$PWD" build-device "$out/build_a.log"
rm -rf /tmp/treeb && mkdir -p /tmp/treeb && tar --exclude=./build-device -cf - . | tar -xf - -C /tmp/treeb
(cd /tmp/treeb && patch -p1 < "$patch_file") > "$out/patch.log" 2>&1 || { cat "$out/patch.log"; exit 1; }
build_targets /tmp/treeb build-b "$out/build_b.log"
echo "builds: $(( $(date +%s) - t0 )) s"; grep -ihE "warning" "$out/build_a.log" "$out/build_b.log" | head -5
/tmp/treeb/build-b/tests/kernels_bi_wkv_gpu_test > "$out/test_b.log" 2>&1; tail -n 1 "$out/test_b.log"
if [ -n "$envvar" ]; then env $envvar=1 /tmp/treeb/build-b/tests/kernels_bi_wkv_gpu_test > "$out/test_b_env.log" 2>&1; tail -n 1 "$out/test_b_env.log"; fi
variants="A B"; [ -n "$envvar" ] && variants="A A+env B B+env"
for round in 1 2; do
  for v in $variants; do
    case $v in A*) bin=$b/bench/bi_wkv_gpu_bench;; B*) bin=/tmp/treeb/build-b/bench/bi_wkv_gpu_bench;; esac
    e=""; case $v in *+env) e="env $envvar=1";; esac
    for shape in 32,1024,384 32,1024,1536 256,256,384; do
      echo "== $v $round $shape"; $e $bin 30 --shape $shape 2>&1 | grep -E "^ *B[0-9].*(f32|bf16)" | head -3
    done
  done
done
echo "total: $(( $(date +%s) - t0 )) s"

#!/usr/bin/env bash
# A/B of Bi-WKV kernel changes in one call: A = the tree as it is, B, C, ... = copies with each PATCH
# applied (patch -p1, paths relative to the repository root). All builds run at once and build only the
# Bi-WKV GPU test and benchmark. Runs each patched build's GPU test (also with $AB_ENV=1 when AB_ENV
# names an environment variable that selects a change), then times every build alternately, twice, at
# the T = 1024 bar shapes and the model's shape (automatic plan, f32 and bf16). An empty patch
# (/dev/null) times the tree against itself: the noise. The logs (builds, patches, GPU tests) end up in
# $OUT/biwkv_ab_logs.tgz.
# Usage: [AB_ENV=NAME] biwkv_ab.sh PATCH [PATCH ...]
source "$(dirname "$0")/env.sh"
[ $# -ge 1 ] || { echo "usage: [AB_ENV=NAME] biwkv_ab.sh PATCH [PATCH ...]"; exit 2; }
envvar=${AB_ENV:-}
targets="tests/kernels_bi_wkv_gpu_test bench/bi_wkv_gpu_bench"
# configure tree $1 into $1/$2 and build only the targets (log $3)
build_targets() {
  (cd "$1" && cmake -S . -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDRWKV_CUDA=ON \
    -Dabsl_DIR=$PWD/.deps/absl/usr/lib/x86_64-linux-gnu/cmake/absl > /dev/null && ninja -C "$2" $targets) > "$3" 2>&1 \
    || { tail -30 "$3"; echo "build of $1 failed"; return 1; }
}
[ $# -le 7 ] || { echo "at most 7 patches (B..H)"; exit 2; }
letters=(B C D E F G H)
names=(A); builds=("$PWD/$b")
build_targets "$PWD" "$b" "$out/build_A.log" & pids=($!)
i=0
for p in "$@"; do
  case $p in /*) patch_file=$p;; *) patch_file=$PWD/$p;; esac  # relative: to the repository root
  name=${letters[$i]}; i=$((i + 1))
  tree=/tmp/tree$name
  rm -rf "$tree" && mkdir -p "$tree" && tar --exclude=./build-device -cf - . | tar -xf - -C "$tree"
  (cd "$tree" && patch -p1 < "$patch_file") > "$out/patch_$name.log" 2>&1 || { cat "$out/patch_$name.log"; exit 1; }
  echo "$name = $p"
  build_targets "$tree" build-ab "$out/build_$name.log" & pids+=($!)
  names+=("$name"); builds+=("$tree/build-ab")
done
for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
echo "builds: $(( $(date +%s) - t0 )) s"; grep -ihE "warning" "$out"/build_*.log | head -5
for k in $(seq 1 $i); do
  n=${names[$k]} bin=${builds[$k]}/tests/kernels_bi_wkv_gpu_test
  $bin > "$out/test_$n.log" 2>&1; echo "$n GPU test: $(tail -n 1 "$out/test_$n.log")"
  if [ -n "$envvar" ]; then env "$envvar=1" $bin > "$out/test_${n}_env.log" 2>&1; echo "$n+env GPU test: $(tail -n 1 "$out/test_${n}_env.log")"; fi
done
for round in 1 2; do
  for k in "${!names[@]}"; do
    for e in "" ${envvar:+"$envvar"}; do
      [ -n "$e" ] && [ "$k" = 0 ] && continue  # the tree has no selectable change
      for shape in 32,1024,384 32,1024,1536 256,256,384; do
        echo "== ${names[$k]}${e:++env} $round $shape"
        ${e:+env "$e=1"} "${builds[$k]}/bench/bi_wkv_gpu_bench" 30 --shape $shape 2>&1 | grep -E "^ *B[0-9].*(f32|bf16)" | head -2
      done
    done
  done
done
echo "total: $(( $(date +%s) - t0 )) s"
(cd "$out" && tar -czf biwkv_ab_logs.tgz ./*.log && rm -f ./*.log)  # one file: the device returns few

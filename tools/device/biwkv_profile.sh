#!/usr/bin/env bash
# Nsight Compute profile of one f32 Bi-WKV launch (a build with line information): the details page, the
# raw metrics and the per-instruction / per-line source tables (instructions executed, stall samples),
# packed into $OUT/biwkv_profile.tgz. Usage: biwkv_profile.sh [backward|forward] [B,T,C] (default:
# backward 32,1024,384, the shape of the f32 bar).
source "$(dirname "$0")/env.sh"
kind=${1:-backward}; shape=${2:-32,1024,384}
flag=1; [ "$kind" = forward ] && flag=0
tools/device/build.sh -DCMAKE_CUDA_FLAGS=-lineinfo > "$out/build.log" 2>&1
echo "build: $(( $(date +%s) - t0 )) s"; grep -iE "warning|error" "$out/build.log" | head -5
rep="$out/biwkv_$kind"
ncu --kernel-name-base demangled --kernel-name "regex:bi_wkv_kernel<float, \(bool\)$flag" --launch-skip 2 --launch-count 1 \
  --set full --import-source yes -o "$rep" $b/bench/bi_wkv_gpu_bench 3 --shape "$shape" > "$out/ncu_run.log" 2>&1
grep -E "==PROF==|ERR" "$out/ncu_run.log" | tail -3
ncu -i "$rep.ncu-rep" --page details > "$out/details.txt" 2>&1
ncu -i "$rep.ncu-rep" --page raw --csv > "$out/raw.csv" 2>&1
ncu -i "$rep.ncu-rep" --page source --csv --print-source sass > "$out/source_sass.csv" 2>&1
ncu -i "$rep.ncu-rep" --page source --csv --print-source cuda,sass > "$out/source_cuda_sass.csv" 2>&1
grep -E "Duration|Executed Instructions |Issue Slots Busy|Eligible Warps" "$out/details.txt"
(cd "$out" && tar czf biwkv_profile.tgz details.txt raw.csv source_sass.csv source_cuda_sass.csv "biwkv_$kind.ncu-rep" && \
  rm -f raw.csv source_sass.csv source_cuda_sass.csv "biwkv_$kind.ncu-rep")
echo "total: $(( $(date +%s) - t0 )) s"

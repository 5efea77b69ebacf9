#!/usr/bin/env bash
# Runs bench/gemm_gpu_bench (ours, cuBLASLt through kernels::gemm_cuda) and bench/gemm_torch.py
# (torch.matmul) on the same GPU, one after the other, and prints per shape ours / PyTorch in percent
# (the bar is >= 90%). Both outputs are kept next to the table.
#
# Usage: bench/run_gemm_compare.sh [build dir (default: build)] [iterations (default: 50)]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-build}"
iterations="${2:-50}"
ours_bin="$build/bench/gemm_gpu_bench"
[[ -x "$ours_bin" ]] || { echo "missing $ours_bin: build the gemm_gpu_bench target first" >&2; exit 1; }

out="$(mktemp -d)"
"$ours_bin" "$iterations" | tee "$out/ours.txt"
python3 "$here/gemm_torch.py" "$iterations" | tee "$out/torch.txt"

echo
echo "## ours / PyTorch (same GPU, median TFLOP/s)"
awk '
  FNR == 1 { file++ }
  $1 == "RESULT" && file == 1 { ours[$2] = $4; order[++n] = $2 }
  $1 == "RESULT" && file == 2 { torch_[$2] = $4 }
  END {
    print "| label | ours TFLOP/s | PyTorch TFLOP/s | ours / PyTorch | >= 90% |"
    print "|---|---|---|---|---|"
    fails = 0
    for (i = 1; i <= n; ++i) {
      l = order[i]
      if (!(l in torch_) || torch_[l] == 0) { printf "| %s | %s | - | - | - |\n", l, ours[l]; continue }
      pct = 100.0 * ours[l] / torch_[l]
      ok = pct >= 90.0 ? "yes" : "NO"
      if (pct < 90.0) fails++
      printf "| %s | %s | %s | %.1f%% | %s |\n", l, ours[l], torch_[l], pct, ok
    }
    printf "\n%d of %d shapes below 90%%\n", fails, n
  }' "$out/ours.txt" "$out/torch.txt"
echo "(raw outputs in $out)"

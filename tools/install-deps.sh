#!/usr/bin/env bash
# Installs what drwkv needs on Debian 12 (apt packages; numpy/h5py from pip for the interop tests).
# The CUDA toolkit (nvcc, cuBLAS, NCCL under /usr/local/cuda) is optional: without it the CPU backend is
# built. Safe to run again.
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
packages=(build-essential cmake ninja-build ccache pkg-config python3 python3-pip
          libopenmpi-dev openmpi-bin libhdf5-dev libyaml-cpp-dev libabsl-dev libgtest-dev libbenchmark-dev
          libopenblas-dev libpng-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
python3 -c "import numpy, h5py" 2>/dev/null || python3 -m pip install -q numpy h5py 2>/dev/null \
  || python3 -m pip install -q --break-system-packages numpy h5py
echo "dependencies ready"

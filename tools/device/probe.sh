#!/usr/bin/env bash
# What the GPU machine has that the build needs.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for l in openblas libblas libpng hdf5 yaml-cpp libgtest libbenchmark libnccl libmpi; do
  printf '%-14s %s\n' "$l" "$(ldconfig -p | grep -m1 "$l" | awk '{print $NF}')"
done
ls /usr/include/hdf5/serial/hdf5.h /usr/include/hdf5.h /usr/include/png.h /usr/include/x86_64-linux-gnu/cblas.h /usr/include/cblas.h 2>&1 | sed 's/^/  /'
cmake --version | head -1; nvcc --version | tail -1; g++ --version | head -1; mpirun --version | head -1
python3 -c "import torch, h5py; print('torch', torch.__version__, 'h5py', h5py.__version__)"

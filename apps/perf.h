// Throughput accounting for progress lines: model FLOPs per image (ANCHORS.md's count: 6 × token-path
// weights × tokens for a training step) and the bf16 GEMM ceiling of this GPU, measured once at start
// (8192³ through our cuBLASLt path), against which MFU is reported.
#pragma once

#include "core/device.h"
#include "models/drwkv_config.h"

namespace drwkv::apps {

double training_flops_per_image(const models::DrwkvConfig& c);
// Median TFLOP/s of bf16 8192³ products on `device` (≈ 20 ms of work); 0 on the CPU.
double measure_gemm_ceiling_tflops(Device device);

}  // namespace drwkv::apps

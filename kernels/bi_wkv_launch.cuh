// Host helpers of the Bi-WKV CUDA launchers (bi_wkv.cu, bi_wkv_backward.cu, bi_wkv_compat.cu): resolving
// a plan on the current device (shared-memory budget, staged chunks), the kernel arguments, the cluster
// launch, and the reduction of the parameter-gradient partials. The kernel is bi_wkv_kernel.cuh.
#pragma once

#include <atomic>

#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_kernel.cuh"
#include "kernels/cuda_utils.cuh"

namespace drwkv::kernels::bi_wkv_detail {

// A plan resolved for a launch on the current device.
struct Resolved {
  Plan plan;
  SmemLayout smem;
  Workspace ws;
  int blocks_per_sm = 1;
};

struct DeviceLimits {
  size_t smem_per_sm, smem_per_block_optin, smem_reserved_per_block;
};
inline DeviceLimits device_limits() {
  int dev = 0, per_sm = 0, optin = 0, reserved = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev));
  return {size_t(per_sm), size_t(optin), size_t(reserved)};
}

inline Plan plan_of(const BiWkvPlan& o, int64_t T, size_t elem_bytes) {
  Plan p = make_plan(T, o.cluster, o.warps, o.chunks_per_warp, elem_bytes);
  DRWKV_ASSERT(p.chunks < (int64_t(1) << 31) && int64_t(p.cluster) * p.warps * p.seg_chunks < (int64_t(1) << 31),
               "bi_wkv: T = %lld is too long", (long long)T);
  DRWKV_ASSERT(plan_valid(p), "bi_wkv: plan cluster %d × warps %d × %d chunks cannot cover T = %lld (cluster ≤ %d, warps ≤ %d)",
               p.cluster, p.warps, p.seg_chunks, (long long)T, kMaxCluster, kMaxWarps);
  return p;
}

inline Resolved resolve(const BiWkvPlan& o, int64_t B, int64_t T, int64_t C, size_t elem_bytes, bool backward) {
  // the kernel indexes within one batch element with 32 bits (up to the next chunk boundary)
  DRWKV_ASSERT((T + kChunk) * C < (int64_t(1) << 31), "bi_wkv: T·C = %lld exceeds the 32-bit indexing of the kernel",
               (long long)(T * C));
  Resolved r;
  r.plan = plan_of(o, T, elem_bytes);
  const DeviceLimits lim = device_limits();
  auto budget_for = [&](int blocks_per_sm) {
    size_t budget = lim.smem_per_sm / size_t(blocks_per_sm);
    budget = budget > lim.smem_reserved_per_block ? budget - lim.smem_reserved_per_block : 0;
    return budget < lim.smem_per_block_optin ? budget : lim.smem_per_block_optin;
  };
  // Automatic: 16-warp blocks one per SM; blocks of ≤ 8 warps two per SM (128 registers), the forward
  // three (the variant capped at 80 registers) when that still stages at least half of every segment
  // (H100: forward 19% faster at T = 1024; at T = 4096 f32, with 2 of 8 chunks staged, 12% slower).
  if (o.blocks_per_sm > 0) {
    r.blocks_per_sm = o.blocks_per_sm;
  } else if (r.plan.warps > 8) {
    r.blocks_per_sm = 1;
  } else {
    const bool three = !backward && 2 * max_staged(r.plan, budget_for(3), elem_bytes, false) >= r.plan.seg_chunks;
    r.blocks_per_sm = three ? 3 : 2;
  }
  DRWKV_ASSERT(regs_for(r.plan.warps, r.blocks_per_sm) > 0,
               "bi_wkv: %d blocks of %d warps per SM exceed the register file (at most 25 warps at 80 registers)",
               r.blocks_per_sm, r.plan.warps);
  int staged = max_staged(r.plan, budget_for(r.blocks_per_sm), elem_bytes, backward);
  if (o.staged_chunks >= 0) staged = o.staged_chunks < r.plan.seg_chunks ? o.staged_chunks : r.plan.seg_chunks;
  r.smem = smem_layout(r.plan, staged, elem_bytes, backward);
  DRWKV_ASSERT(r.smem.bytes <= lim.smem_per_block_optin,
               "bi_wkv: plan needs %u bytes of shared memory per block, the device allows %zu", r.smem.bytes,
               lim.smem_per_block_optin);
  r.ws = workspace_layout(r.plan, B, C);
  return r;
}

template <typename E>
KernelArgs<E> kernel_args(const Resolved& r, void* workspace, const E* k, const E* v, const E* dy, E* y, E* dk, E* dv,
                          const float* decay, const float* first, int64_t T, int64_t C) {
  char* w = static_cast<char*>(workspace);
  KernelArgs<E> a;
  a.k = k;
  a.v = v;
  a.dy = dy;
  a.y = y;
  a.dk = dk;
  a.dv = dv;
  a.decay = decay;
  a.first = first;
  a.xchg = reinterpret_cast<float*>(w + r.ws.xchg);
  a.part = reinterpret_cast<float*>(w + r.ws.part);
  a.rc = r.ws.rc_global ? reinterpret_cast<float*>(w + r.ws.rc) : nullptr;
  a.T = T;
  a.C = C;
  a.TC = T * C;
  a.groups = int((C + 31) / 32);
  a.chunks = r.plan.chunks;
  a.cluster = r.plan.cluster;
  a.warps = r.plan.warps;
  a.seg_chunks = r.plan.seg_chunks;
  a.smem = r.smem;
  return a;
}

// Launch configuration with the cluster dimension; `attr` must outlive the launch call.
inline cudaLaunchConfig_t launch_config(const Resolved& r, int64_t B, int64_t C, cudaStream_t s,
                                        cudaLaunchAttribute* attr) {
  const int64_t blocks = B * ((C + 31) / 32) * r.plan.cluster;
  DRWKV_ASSERT(blocks < (int64_t(1) << 31), "bi_wkv: %lld blocks exceed the grid limit", (long long)blocks);
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(blocks));
  cfg.blockDim = dim3(unsigned(r.plan.warps * 32));
  cfg.dynamicSmemBytes = r.smem.bytes;
  cfg.stream = s;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = unsigned(r.plan.cluster);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cfg;
}

namespace {  // per translation unit, like the kernels themselves (bi_wkv_kernel.cuh)
// The kernel variant of a plan: chunk carries in shared memory (the usual case) or in the workspace, and
// registers per thread such that the plan's blocks fit an SM (regs_for; resolve() checks that one does).
template <typename E, bool kBackward, int kRegs> auto variant(bool global_carries) {
  return global_carries ? &bi_wkv_kernel<E, kBackward, true, kRegs> : &bi_wkv_kernel<E, kBackward, false, kRegs>;
}
template <typename E, bool kBackward> auto kernel_for(const Resolved& r) {
  switch (regs_for(r.plan.warps, r.blocks_per_sm)) {
    case 128: return variant<E, kBackward, 128>(r.ws.rc_global);
    default: return variant<E, kBackward, 80>(r.ws.rc_global);
  }
}

// The kernels may use all of the opt-in shared memory (set per device, once).
template <typename E, bool kBackward> void allow_smem() {
  static std::atomic<bool> done[64];
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 64 && done[dev].load(std::memory_order_acquire)) return;
  const int bytes = int(device_limits().smem_per_block_optin);
  for (bool global_carries : {false, true})
    for (auto fn : {variant<E, kBackward, 128>(global_carries), variant<E, kBackward, 80>(global_carries)})
      CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  if (dev < 64) done[dev].store(true, std::memory_order_release);
}

template <typename E, bool kBackward>
void launch_kernel(const Resolved& r, const KernelArgs<E>& a, int64_t B, int64_t C, cudaStream_t s) {
  allow_smem<E, kBackward>();
  cudaLaunchAttribute attr[1];
  const cudaLaunchConfig_t cfg = launch_config(r, B, C, s, attr);
  cudaError_t err = cudaLaunchKernelEx(&cfg, kernel_for<E, kBackward>(r), a);
  if (err != cudaSuccess) {  // say which configuration the device refused
    (void)cudaGetLastError();
    cudaFuncAttributes fa{};
    cudaFuncGetAttributes(&fa, reinterpret_cast<const void*>(kernel_for<E, kBackward>(r)));
    int clusters = -1;
    cudaOccupancyMaxActiveClusters(&clusters, reinterpret_cast<const void*>(kernel_for<E, kBackward>(r)), &cfg);
    (void)cudaGetLastError();
    DRWKV_FAIL("bi_wkv %s launch refused (%s): grid %u, block %u, cluster %d, dynamic smem %zu (kernel max %d, static %zu), "
               "registers %d, max threads %d, max active clusters %d; T=%lld C=%lld warps %d seg_chunks %d",
               kBackward ? "backward" : "forward", cudaGetErrorString(err), cfg.gridDim.x, cfg.blockDim.x, r.plan.cluster,
               cfg.dynamicSmemBytes, fa.maxDynamicSharedSizeBytes, fa.sharedSizeBytes, fa.numRegs, fa.maxThreadsPerBlock,
               clusters, (long long)a.T, (long long)a.C, r.plan.warps, r.plan.seg_chunks);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename E>
BiWkvLaunchInfo launch_info(const BiWkvPlan& o, int64_t T, bool backward) {
  const Resolved r = resolve(o, 1, T, 32, sizeof(E), backward);
  BiWkvLaunchInfo info;
  info.cluster = r.plan.cluster;
  info.warps = r.plan.warps;
  info.chunks_per_warp = r.plan.seg_chunks;
  info.staged_chunks = r.smem.staged;
  info.blocks_per_sm = r.blocks_per_sm;
  info.smem_bytes = r.smem.bytes;
  info.carries_in_smem = !r.ws.rc_global;
  int clusters = 0;
  cudaLaunchAttribute attr[1];
  cudaLaunchConfig_t cfg = launch_config(r, 1024, 32, nullptr, attr);
  if (backward) {
    allow_smem<E, true>();
    CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, reinterpret_cast<const void*>(kernel_for<E, true>(r)), &cfg));
  } else {
    allow_smem<E, false>();
    CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, reinterpret_cast<const void*>(kernel_for<E, false>(r)), &cfg));
  }
  info.active_clusters = clusters;
  return info;
}

// ddecay[c] += Σ_r part[r][0][c] / T and dfirst[c] += Σ_r part[r][1][c] / T over rows r in a fixed
// order (bi_wkv_backward.cu); either output may be null.
void launch_param_grads(float* ddecay, float* dfirst, const float* part, int64_t rows, int64_t C, int64_t T,
                        cudaStream_t s);

}  // namespace drwkv::kernels::bi_wkv_detail

// A host emulation of the CUDA execution model, enough to run kernels/bi_wkv_kernel.cuh (device code
// written against CUDA builtins only) on a machine without a GPU: each block runs on its own OS thread,
// the block's CUDA threads are fibers (ucontext) switched only at barriers, resumed in a fresh random
// order after every barrier (so a missing barrier between a write and a read by different threads shows
// up as a wrong result). Thread block clusters: the blocks of a cluster start together (at most
// `resident` blocks run at a time, whole clusters only) and cluster_sync() is a barrier over all threads
// of all blocks of the cluster. Dynamic shared memory is one buffer per block, filled with a NaN
// pattern at launch. Include it before the kernel source and after any other header.
//
// Not emulated: warp-synchronous behaviour (the kernel uses no warp intrinsics), weak memory ordering
// (the host is TSO), the device's ex2.approx and rcp.approx (the host branches of bi_wkv_scan.h run
// instead).
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __maxnreg__(...)
#define __shared__ thread_local
#define DRWKV_CUDA_EMULATION 1

namespace emu {

struct Dim {
  unsigned x = 0, y = 0, z = 0;
};

struct Fiber {
  ucontext_t ctx;
  Dim tid;
  int state = 0;  // 0 runnable, 1 waiting at a block barrier, 2 exited, 3 waiting at the cluster barrier
  std::unique_ptr<char[]> stack;  // not value-initialised: pages are touched only as the stack grows
};

// A barrier over the OS threads running the blocks of one cluster; a wait that does not complete within
// a minute means the blocks disagree on the number of cluster barriers: reported, then abort.
struct ClusterBarrier {
  explicit ClusterBarrier(unsigned n) : count(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mu);
    const unsigned gen = generation;
    if (++arrived == count) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return generation != gen; })) {
      std::fprintf(stderr, "emulation: cluster barrier timed out (%u of %u blocks arrived)\n", arrived, count);
      std::abort();
    }
  }
  std::mutex mu;
  std::condition_variable cv;
  unsigned count, arrived = 0, generation = 0;
};

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t scheduler;
  size_t current = 0;
  Dim bid, bdim, gdim;
  const std::function<void()>* body = nullptr;
  std::vector<unsigned char> smem;
  ClusterBarrier* cluster = nullptr;
};

inline thread_local Block* g_block = nullptr;
inline std::atomic<long> g_barrier_errors{0};  // blocks whose threads disagreed on a barrier

inline void fiber_entry() {
  (*g_block->body)();
  Fiber& f = g_block->fibers[g_block->current];
  f.state = 2;
  swapcontext(&f.ctx, &g_block->scheduler);
}

// Runs one block to completion on the calling OS thread.
inline void run_block(unsigned bid, unsigned grid, unsigned threads, size_t smem_bytes, ClusterBarrier* cluster,
                      const std::function<void()>& body, uint64_t seed) {
  Block b;
  b.bid.x = bid;
  b.gdim.x = grid;
  b.bdim.x = threads;
  b.body = &body;
  b.cluster = cluster;
  b.smem.resize(smem_bytes + 16);
  std::memset(b.smem.data(), 0xFF, b.smem.size());  // NaN as floats
  b.fibers.resize(threads);
  g_block = &b;
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = b.fibers[t];
    f.tid.x = t;
    constexpr size_t kStack = 64 * 1024;
    f.stack.reset(new char[kStack]);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.get();
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  std::mt19937_64 rng(seed);
  std::vector<unsigned> order(threads);
  for (unsigned t = 0; t < threads; ++t) order[t] = t;
  for (;;) {
    std::shuffle(order.begin(), order.end(), rng);
    for (unsigned t : order) {
      if (b.fibers[t].state != 0) continue;
      b.current = t;
      swapcontext(&b.scheduler, &b.fibers[t].ctx);
    }
    unsigned at_block = 0, at_cluster = 0;
    for (const Fiber& f : b.fibers) {
      at_block += f.state == 1;
      at_cluster += f.state == 3;
    }
    if (at_block + at_cluster == 0) break;  // all exited
    if (at_block != threads && at_cluster != threads) {
      ++g_barrier_errors;
      std::fprintf(stderr, "emulation: block %u: %u threads at a block barrier, %u at the cluster barrier, of %u\n",
                   bid, at_block, at_cluster, threads);
      if (at_cluster > 0) std::abort();  // the other blocks of the cluster would wait forever
      break;
    }
    if (at_cluster == threads) {
      if (!cluster) {
        std::fprintf(stderr, "emulation: cluster barrier in a launch without clusters\n");
        std::abort();
      }
      cluster->arrive_and_wait();
    }
    for (Fiber& f : b.fibers) f.state = 0;
  }
  g_block = nullptr;
}

// A launch of `grid` blocks of `threads` threads in clusters of `cluster` consecutive blocks, each with
// `smem_bytes` of dynamic shared memory; clusters start in index order, at most `resident` blocks at once.
inline void launch(unsigned grid, unsigned threads, unsigned cluster, size_t smem_bytes, unsigned resident,
                   const std::function<void()>& body, uint64_t seed) {
  if (grid % cluster != 0 || resident < cluster) {
    std::fprintf(stderr, "emulation: grid %u, cluster %u, resident %u\n", grid, cluster, resident);
    std::abort();
  }
  std::vector<std::thread> started;
  std::vector<std::unique_ptr<ClusterBarrier>> barriers;
  std::atomic<unsigned> live{0};
  for (unsigned c0 = 0; c0 < grid; c0 += cluster) {
    while (live.load() + cluster > resident) std::this_thread::yield();
    live += cluster;
    barriers.push_back(std::make_unique<ClusterBarrier>(cluster));
    ClusterBarrier* cb = barriers.back().get();
    for (unsigned bid = c0; bid < c0 + cluster; ++bid)
      started.emplace_back([&, bid, cb] {
        run_block(bid, grid, threads, smem_bytes, cb, body, seed * 7919 + bid);
        --live;
      });
  }
  for (std::thread& t : started) t.join();
}

}  // namespace emu

#define threadIdx (::emu::g_block->fibers[::emu::g_block->current].tid)
#define blockIdx (::emu::g_block->bid)
#define blockDim (::emu::g_block->bdim)
#define gridDim (::emu::g_block->gdim)

inline void __syncthreads() {
  emu::Fiber& f = emu::g_block->fibers[emu::g_block->current];
  f.state = 1;
  swapcontext(&f.ctx, &emu::g_block->scheduler);
}
inline void cluster_sync() {
  emu::Fiber& f = emu::g_block->fibers[emu::g_block->current];
  f.state = 3;
  swapcontext(&f.ctx, &emu::g_block->scheduler);
}
inline unsigned char* dynamic_smem() {
  return reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(emu::g_block->smem.data()) + 15) &
                                          ~uintptr_t(15));
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline float __ldcg(const float* p) {
  float r;
  __atomic_load(p, &r, __ATOMIC_RELAXED);
  return r;
}

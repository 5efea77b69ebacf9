// A host emulation of the CUDA execution model, enough to run kernels/bi_wkv_tile.cuh (device code
// written against CUDA builtins only) on a machine without a GPU: each block runs on its own OS thread,
// the block's CUDA threads are fibers (ucontext) switched only at __syncthreads, resumed in a fresh random
// order after every barrier (so a missing barrier between a write and a read by different threads shows
// up as a wrong result); blocks start in index order, at most `resident` at a time (so the chained
// algorithm's forward-progress assumption is exercised). __shared__ variables are thread_local, i.e.
// one per block. Include it before the kernel source and after any other header.
//
// Not emulated: warp-synchronous behaviour (the kernel uses no warp intrinsics), weak memory ordering
// (the host is TSO), the device's ex2.approx and rcp (the host branches of bi_wkv_scan.h run instead).
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ thread_local

namespace emu {

struct Dim {
  unsigned x = 0, y = 0, z = 0;
};

struct Fiber {
  ucontext_t ctx;
  Dim tid;
  int state = 0;  // 0 runnable, 1 waiting at a barrier, 2 exited
  std::unique_ptr<char[]> stack;  // not value-initialised: pages are touched only as the stack grows
};

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t scheduler;
  size_t current = 0;
  Dim bid, bdim, gdim;
  const std::function<void()>* body = nullptr;
};

inline thread_local Block* g_block = nullptr;
inline std::atomic<long> g_barrier_errors{0};  // blocks where some threads exited while others waited

inline void fiber_entry() {
  (*g_block->body)();
  Fiber& f = g_block->fibers[g_block->current];
  f.state = 2;
  swapcontext(&f.ctx, &g_block->scheduler);
}

// Runs one block to completion on the calling OS thread.
inline void run_block(unsigned bid, unsigned grid, unsigned threads, const std::function<void()>& body, uint64_t seed) {
  Block b;
  b.bid.x = bid;
  b.gdim.x = grid;
  b.bdim.x = threads;
  b.body = &body;
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
    unsigned waiting = 0;
    for (const Fiber& f : b.fibers) waiting += f.state == 1;
    if (waiting == 0) break;  // all exited
    if (waiting != threads) {
      ++g_barrier_errors;
      std::fprintf(stderr, "emulation: block %u: %u of %u threads wait at a barrier, the others exited\n", bid, waiting,
                   threads);
      break;
    }
    for (Fiber& f : b.fibers) f.state = 0;
  }
  g_block = nullptr;
}

// A launch of `grid` blocks of `threads` threads; blocks start in index order, at most `resident` at once.
inline void launch(unsigned grid, unsigned threads, unsigned resident, const std::function<void()>& body, uint64_t seed) {
  std::vector<std::thread> started;
  std::atomic<unsigned> live{0};
  for (unsigned bid = 0; bid < grid; ++bid) {
    while (live.load() >= resident) std::this_thread::yield();
    ++live;
    started.emplace_back([&, bid] {
      run_block(bid, grid, threads, body, seed * 7919 + bid);
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
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __nanosleep(unsigned) { std::this_thread::yield(); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline float __ldcg(const float* p) {
  float r;
  __atomic_load(p, &r, __ATOMIC_RELAXED);
  return r;
}

// Streams, events, current-stream tracking and the per-device Context (core/stream.h).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "core/stream.h"

namespace drwkv {
namespace {
constexpr size_t kWorkspaceBytes = size_t(64) << 20;  // cuBLASLt workspace (Hopper kernels want >= 32 MiB)

thread_local std::map<int, Stream> t_current;  // per-thread overrides from StreamGuard
}  // namespace

void Stream::synchronize() const { CUDA_CHECK(cudaStreamSynchronize(to_cuda(handle_))); }

Event::Event(bool timing) {
  CUDA_CHECK(cudaGetDevice(&device_));
  cudaEvent_t e;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
  handle_ = reinterpret_cast<EventHandle>(e);
}
Event::~Event() {
  if (handle_) cudaEventDestroy(reinterpret_cast<cudaEvent_t>(handle_));
}
void Event::record(const Stream& s) {
  CUDA_CHECK(cudaEventRecord(reinterpret_cast<cudaEvent_t>(handle_), to_cuda(s.handle())));
}
void Event::wait_on(const Stream& s) const {
  CUDA_CHECK(cudaStreamWaitEvent(to_cuda(s.handle()), reinterpret_cast<cudaEvent_t>(handle_), 0));
}
void Event::synchronize() const { CUDA_CHECK(cudaEventSynchronize(reinterpret_cast<cudaEvent_t>(handle_))); }
bool Event::query() const {
  cudaError_t e = cudaEventQuery(reinterpret_cast<cudaEvent_t>(handle_));
  if (e == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  CUDA_CHECK(e);
  return true;
}
float Event::elapsed_ms(const Event& end) const {
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, reinterpret_cast<cudaEvent_t>(handle_),
                                  reinterpret_cast<cudaEvent_t>(end.handle_)));
  return ms;
}

Context::Context(int device) : device_(device) {
  CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  main_ = reinterpret_cast<StreamHandle>(s);
  int lo = 0, hi = 0;
  CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
  CUDA_CHECK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, hi));  // comm overlaps compute
  comm_ = reinterpret_cast<StreamHandle>(s);
  cublasLtHandle_t h;
  CUBLAS_CHECK(cublasLtCreate(&h));
  cublaslt_ = h;
  CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
  workspace_bytes_ = kWorkspaceBytes;
  CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
}

Context& Context::get(int device) {
  static std::mutex mu;
  static std::map<int, Context*> all;  // never destroyed: CUDA may be torn down before static dtors
  std::lock_guard<std::mutex> lock(mu);
  auto& c = all[device];
  if (!c) c = new Context(device);
  return *c;
}

void Context::synchronize() const {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaDeviceSynchronize());
}

Stream current_stream(int device) {
  auto it = t_current.find(device);
  if (it != t_current.end()) return it->second;
  return Context::get(device).main_stream();
}

StreamGuard::StreamGuard(const Stream& s) : device_(s.device().index) {
  auto it = t_current.find(device_);
  if (it != t_current.end()) {
    previous_ = it->second;
    had_previous_ = true;
  }
  t_current[device_] = s;
}
StreamGuard::~StreamGuard() {
  if (had_previous_) {
    t_current[device_] = previous_;
  } else {
    t_current.erase(device_);
  }
}

void cuda_set_device(int device) { CUDA_CHECK(cudaSetDevice(device)); }
void cuda_device_synchronize(int device) {
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace drwkv

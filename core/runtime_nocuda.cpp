// The CUDA runtime surface of core in a build without the CUDA backend: every entry point fails with
// a clear message, except the device count, which is truthfully zero.
#include "core/allocator.h"
#include "core/build_config.h"
#include "core/stream.h"

namespace drwkv {
#define NO_CUDA fail_cuda_not_built(__FILE__, __LINE__)

int cuda_device_count() { return 0; }
void Stream::synchronize() const { NO_CUDA; }
Event::Event(bool) { NO_CUDA; }
Event::~Event() = default;
void Event::record(const Stream&) { NO_CUDA; }
void Event::wait_on(const Stream&) const { NO_CUDA; }
void Event::synchronize() const { NO_CUDA; }
bool Event::query() const { NO_CUDA; }
float Event::elapsed_ms(const Event&) const { NO_CUDA; }
Context& Context::get(int) { NO_CUDA; }
void Context::synchronize() const { NO_CUDA; }
Stream current_stream(int) { NO_CUDA; }
StreamGuard::StreamGuard(const Stream&) { NO_CUDA; }
StreamGuard::~StreamGuard() = default;
void cuda_set_device(int) { NO_CUDA; }
void cuda_device_synchronize(int) { NO_CUDA; }
void* cuda_allocate(int, size_t) { NO_CUDA; }
void cuda_release(int, void*) { NO_CUDA; }
AllocatorStats cuda_allocator_stats(int) { NO_CUDA; }
void cuda_allocator_reset_peak(int) { NO_CUDA; }
void cuda_allocator_empty_cache(int) { NO_CUDA; }
size_t cuda_allocator_round(size_t) { NO_CUDA; }
void* pinned_allocate(size_t) { NO_CUDA; }
void pinned_release(void*) { NO_CUDA; }

#undef NO_CUDA
}  // namespace drwkv

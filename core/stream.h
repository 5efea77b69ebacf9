// CUDA streams and events, wrapped; and the per-device Context (streams, cuBLASLt handle, workspace).
//
// Every CUDA operation of the project runs on the *current stream* of its device: the context's main
// compute stream unless a StreamGuard on this thread says otherwise (the data-parallel reducer runs its
// all-reduces under a guard on the communication stream). In a CPU-only build these types exist but
// every method fails with "built without CUDA" (core/cuda_absent.cpp).
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace drwkv {

struct CUevent_st;
using EventHandle = CUevent_st*;

class Stream {
 public:
  Stream() = default;
  Stream(StreamHandle h, Device d) : handle_(h), device_(d) {}
  StreamHandle handle() const { return handle_; }
  Device device() const { return device_; }
  void synchronize() const;
  bool operator==(const Stream& o) const = default;

 private:
  StreamHandle handle_ = nullptr;
  Device device_ = Device::cuda(0);
};

class Event {
 public:
  explicit Event(bool timing = false);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(const Stream& s);
  void wait_on(const Stream& s) const;  // s waits until this event has completed
  void synchronize() const;
  bool query() const;                           // completed?
  float elapsed_ms(const Event& end) const;     // both recorded with timing = true
  EventHandle handle() const { return handle_; }

 private:
  EventHandle handle_ = nullptr;
  int device_ = 0;
};

// Per-device resources; created on first use, alive until process exit.
class Context {
 public:
  static Context& get(int device);
  static Context& get(Device d) { return get(d.index); }

  int device() const { return device_; }
  Stream main_stream() const { return Stream(main_, Device::cuda(device_)); }
  Stream comm_stream() const { return Stream(comm_, Device::cuda(device_)); }
  void* cublaslt_handle() const { return cublaslt_; }  // cublasLtHandle_t
  void* workspace() const { return workspace_; }       // scratch for cuBLASLt (device memory)
  size_t workspace_bytes() const { return workspace_bytes_; }
  int sm_count() const { return sm_count_; }
  void synchronize() const;  // waits for everything queued on the device

 private:
  explicit Context(int device);
  int device_ = 0;
  StreamHandle main_ = nullptr;
  StreamHandle comm_ = nullptr;
  void* cublaslt_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  int sm_count_ = 0;
};

// The stream on which work for `device` is queued by this thread.
Stream current_stream(int device);
inline Stream current_stream(Device d) { return current_stream(d.index); }

// Makes `s` the current stream of its device for this thread while in scope.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_ = 0;
  Stream previous_;
  bool had_previous_ = false;
};

// Selects the CUDA device for this thread (cudaSetDevice).
void cuda_set_device(int device);
// Waits for all work on the device.
void cuda_device_synchronize(int device);

}  // namespace drwkv

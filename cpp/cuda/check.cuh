// Error checking and ownership for CUDA runtime objects. Every runtime call goes through
// FASTMLP_CUDA_CHECK, which throws CudaError("fastmlp CUDA: <call> failed: <reason>"); every
// kernel launch is followed by FASTMLP_CUDA_CHECK_LAUNCH, so that a bad launch configuration
// is reported where it happened. Device memory and streams are owned by RAII objects, so an
// exception thrown half-way through a fit leaks nothing.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "api.hpp"

namespace fastmlp::cuda {

[[noreturn]] inline void throw_cuda_error(const char* call, cudaError_t status) {
  throw CudaError(std::string("fastmlp CUDA: ") + call + " failed: " + cudaGetErrorString(status));
}

inline void check_cuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess) throw_cuda_error(call, status);
}

}  // namespace fastmlp::cuda

// The call's name is the text up to its first parenthesis, e.g. "cudaMalloc".
#define FASTMLP_CUDA_CHECK(call)                                                                  \
  do {                                                                                            \
    const cudaError_t fastmlp_status_ = (call);                                                   \
    if (fastmlp_status_ != cudaSuccess) {                                                         \
      const std::string fastmlp_text_ = #call;                                                    \
      ::fastmlp::cuda::throw_cuda_error(fastmlp_text_.substr(0, fastmlp_text_.find('(')).c_str(), \
                                        fastmlp_status_);                                         \
    }                                                                                             \
  } while (0)

// After a <<<...>>> launch: configuration errors surface here, faults at the next sync.
#define FASTMLP_CUDA_CHECK_LAUNCH(kernel_name) \
  ::fastmlp::cuda::check_cuda(cudaGetLastError(), "kernel launch (" kernel_name ")")

namespace fastmlp::cuda {

// Owns count elements of T on the current device; contents uninitialised.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) { resize(count); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }

  // Discards the contents; allocates exactly count elements (none for 0).
  void resize(std::size_t count) {
    release();
    if (count == 0) return;
    void* p = nullptr;
    FASTMLP_CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
    data_ = static_cast<T*>(p);
    count_ = count;
  }
  // Grows (discarding the contents) only when fewer than count elements are held.
  void reserve(std::size_t count) {
    if (count > count_) resize(count);
  }

  T* get() const { return data_; }
  std::size_t size() const { return count_; }

 private:
  void release() noexcept {
    // A destructor must not throw: a failing cudaFree (a dead context) has nothing left to free.
    if (data_) cudaFree(data_);
    data_ = nullptr;
    count_ = 0;
  }
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

// A non-blocking stream of its own, destroyed with the object.
class Stream {
 public:
  Stream() { FASTMLP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const { FASTMLP_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// Makes `device` current for the object's lifetime and restores the caller's device after, so
// that a Trainer on device 1 does not move other CUDA users of the process.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    FASTMLP_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) FASTMLP_CUDA_CHECK(cudaSetDevice(device));
    changed_ = previous_ != device;
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// Host <-> device copies on a stream, counted in elements.
template <class T>
void copy_to_device(T* dst, const T* src, std::size_t count, cudaStream_t stream) {
  if (count == 0) return;
  FASTMLP_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyHostToDevice, stream));
}
template <class T>
void copy_to_host(T* dst, const T* src, std::size_t count, cudaStream_t stream) {
  if (count == 0) return;
  FASTMLP_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
}

}  // namespace fastmlp::cuda

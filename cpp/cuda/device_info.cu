// Which devices there are, what they are, and which CUDA runtime this module carries.
#include <cuda_runtime.h>

#include <string>

#include "api.hpp"
#include "check.cuh"

namespace fastmlp::cuda {

namespace {

// cudaGetDeviceCount's result: without a driver or a GPU it fails (insufficient driver, no
// device); that is an answer here, not an error, so it is returned rather than thrown.
cudaError_t query_count(int* count) {
  *count = 0;
  const cudaError_t status = cudaGetDeviceCount(count);
  if (status != cudaSuccess) {
    *count = 0;
    cudaGetLastError();  // clear it, so that the next checked call does not report it
  }
  return status;
}

}  // namespace

int device_count() {
  int count = 0;
  query_count(&count);
  return count;
}

std::string device_status() {
  int count = 0;
  const cudaError_t status = query_count(&count);
  if (status != cudaSuccess) return cudaGetErrorString(status);
  if (count == 0) return cudaGetErrorString(cudaErrorNoDevice);
  return "";
}

DeviceProperties device_properties(int index) {
  cudaDeviceProp prop{};
  FASTMLP_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  DeviceProperties out;
  out.name = prop.name;
  out.major = prop.major;
  out.minor = prop.minor;
  out.total_memory = prop.totalGlobalMem;
  out.multiprocessors = prop.multiProcessorCount;
  return out;
}

std::string runtime_version() {
  // CUDART_VERSION is 1000 * major + 10 * minor: 13000 is "13.0".
  return std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10);
}

}  // namespace fastmlp::cuda

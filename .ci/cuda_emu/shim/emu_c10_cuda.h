// Emulator shim of the c10/cuda API the host glue uses (device guard, current stream, error checks),
// for compiling csrc/cuda/*_host.cpp against CPU tensors (see ../build.py).
#pragma once

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include "emu_runtime_api.h"

namespace c10 {
namespace cuda {
struct CUDAGuard {
  explicit CUDAGuard(c10::Device) {}
};
struct CUDAStream {
  operator cudaStream_t() const { return nullptr; }
};
inline CUDAStream getCurrentCUDAStream() { return {}; }
}  // namespace cuda
}  // namespace c10

#define C10_CUDA_CHECK(expr) TORCH_CHECK((expr) == cudaSuccess, "emulated CUDA call failed: " #expr)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() \
  do {                                 \
  } while (0)

// Input validation on the device: one kernel flags which of up to kMaxFiniteArrays float arrays
// hold a NaN or ±inf, so the ops' "inputs are finite" check costs one launch (its result rides on
// the op's device→host copy) instead of a reduction per tensor.
#include <cuda_runtime.h>

#include <cstdint>

#include "launchers.h"

namespace splatnet {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

// NaN or ±inf: all exponent bits set. A bit test, so no compiler flag can fold it away.
__device__ inline bool non_finite(float v) { return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u; }

__global__ void finite_flags_kernel(FiniteArrays arrays, int64_t* __restrict__ flags) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t start = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (int a = 0; a < arrays.num; ++a) {
    const float* __restrict__ p = arrays.ptr[a];
    bool bad = false;
    for (int64_t i = start; i < arrays.count[a]; i += stride) bad |= non_finite(p[i]);
    if (bad) flags[a] = 0;  // every writer stores the same value: no atomics needed
  }
}

}  // namespace

void finite_flags(const FiniteArrays& arrays, int64_t* flags, cudaStream_t stream) {
  int64_t largest = 0;
  for (int a = 0; a < arrays.num; ++a) largest = arrays.count[a] > largest ? arrays.count[a] : largest;
  if (largest == 0) return;
  int64_t blocks = (largest + kThreads - 1) / kThreads;
  blocks = blocks < kMaxBlocks ? blocks : kMaxBlocks;
  finite_flags_kernel<<<(unsigned int)blocks, kThreads, 0, stream>>>(arrays, flags);
}

}  // namespace cuda
}  // namespace splatnet

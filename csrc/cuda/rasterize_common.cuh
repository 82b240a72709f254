// Device helpers shared by the CUDA rasterizer kernels (rasterize_fwd.cu, rasterize_bwd.cu): the
// shared-memory batch layout, warp reductions and the channel-chunk dispatch. The blending math
// itself is in splatnet/blend.h (shared with the CPU op).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace splatnet {
namespace cuda {

// Threads per rasterizer block (one per pixel of a tile): 16×16 tiles, or 8×8.
constexpr int kMaxRasterThreads = 256;

// One Gaussian of a tile's list as staged in shared memory: conic (a, b, c) and opacity in one
// float4 (one 16-byte load per pixel thread), the 2D mean, and the index n within its image.
struct StagedGaussians {
  float4* conic_opac;  // [block]
  float2* mean;        // [block]
  int32_t* id;         // [block]
  float* values;       // [block, CDIM] (backward only)
};

// Carves the dynamic shared memory of a block of `block` threads; values gets block·cdim floats.
__device__ inline StagedGaussians carve_shared(void* base, int block, int cdim) {
  StagedGaussians s;
  s.conic_opac = reinterpret_cast<float4*>(base);
  s.mean = reinterpret_cast<float2*>(s.conic_opac + block);
  s.id = reinterpret_cast<int32_t*>(s.mean + block);
  s.values = cdim > 0 ? reinterpret_cast<float*>(s.id + block) : nullptr;
  return s;
}

inline size_t shared_bytes(int block, int cdim) {
  return (size_t)block * (sizeof(float4) + sizeof(float2) + sizeof(int32_t) + sizeof(float) * cdim);
}

// Copies Gaussian n of image img into slot `slot` of the staged batch (values: channels
// [c0, c0 + nch) of Ch, zero-padded to CDIM).
template <int CDIM>
__device__ inline void stage_gaussian(const StagedGaussians& s, int slot, int32_t n, int64_t img, int64_t N,
                                      const float* __restrict__ means2d, const float* __restrict__ conics,
                                      const float* __restrict__ opac, const float* __restrict__ values,
                                      int64_t Ch, int c0, int nch) {
  const int64_t g = img * N + n;
  s.id[slot] = n;
  s.mean[slot] = make_float2(means2d[g * 2], means2d[g * 2 + 1]);
  s.conic_opac[slot] = make_float4(conics[g * 3], conics[g * 3 + 1], conics[g * 3 + 2], opac[g]);
  if (CDIM > 0 && s.values != nullptr) {
#pragma unroll
    for (int k = 0; k < CDIM; ++k) s.values[slot * CDIM + k] = k < nch ? values[g * Ch + c0 + k] : 0.f;
  }
}

// Sum over the 32 lanes of a full warp; the result is valid in lane 0.
__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline int warp_max(int v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Channels are blended in chunks of CDIM (a template parameter, so per-pixel accumulators live in
// registers): exactly Ch when Ch ≤ 4 (colour + depth, the common case), else 8 or 16 per chunk,
// one chunk per blockIdx.z. Every chunk replays the same per-pixel α/T walk, so results agree.
inline int channel_chunk(int64_t Ch) { return Ch <= 4 ? (Ch < 1 ? 1 : (int)Ch) : (Ch <= 8 ? 8 : 16); }

inline int num_channel_chunks(int64_t Ch, int cdim) { return Ch <= 0 ? 1 : (int)((Ch + cdim - 1) / cdim); }

// Calls f(std::integral_constant<int, CDIM>{}) for CDIM = channel_chunk(Ch).
template <typename F>
inline void dispatch_channel_chunk(int cdim, F&& f) {
  switch (cdim) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: f(std::integral_constant<int, 16>{}); break;
  }
}

}  // namespace cuda
}  // namespace splatnet

// CUDA rasterizer, forward: one thread block per (image, tile, channel chunk), one thread per
// pixel. The block walks its tile's depth-sorted list in batches of blockDim (256 for 16×16
// tiles): every thread stages one Gaussian of the batch into shared memory, then every pixel
// blends the whole batch from shared memory. The block stops as soon as every pixel is done
// (T would drop below kTransmittanceMin), checked once per batch with __syncthreads_count.
// α, the skip threshold and the stop rule are splatnet/blend.h's, as on the CPU.
#include <cuda_runtime.h>

#include <cstdint>

#include "launchers.h"
#include "rasterize_common.cuh"
#include "splatnet/blend.h"
#include "splatnet/constants.h"
#include "splatnet/tiles.h"

namespace splatnet {
namespace cuda {
namespace {

template <int CDIM>
__global__ void __launch_bounds__(kMaxRasterThreads) rasterize_forward_kernel(
    const float* __restrict__ means2d, const float* __restrict__ conics, const float* __restrict__ values,
    const float* __restrict__ opac, const int32_t* __restrict__ tile_offsets, const int32_t* __restrict__ flat_ids,
    int64_t N, int64_t Ch, TileGrid grid, float* __restrict__ image, float* __restrict__ alpha,
    int32_t* __restrict__ last_ids, float* __restrict__ final_T) {
  extern __shared__ float4 shared_mem[];
  const int block = blockDim.x * blockDim.y;
  const StagedGaussians s = carve_shared(shared_mem, block, 0);

  const int64_t img = blockIdx.y;
  const int tile = blockIdx.x;
  const int c0 = blockIdx.z * CDIM;
  const int nch = Ch - c0 < CDIM ? (int)(Ch - c0) : CDIM;  // channels of this chunk (0 when Ch = 0)
  const int x = (tile % grid.tiles_x) * grid.tile_size + threadIdx.x;
  const int y = (tile / grid.tiles_x) * grid.tile_size + threadIdx.y;
  const bool inside = x < grid.width && y < grid.height;
  const float px = (float)x + 0.5f, py = (float)y + 0.5f;
  const int tr = threadIdx.y * blockDim.x + threadIdx.x;

  const int64_t image_tile = img * num_tiles(grid) + tile;
  const int begin = tile_offsets[image_tile], end = tile_offsets[image_tile + 1];
  const float* __restrict__ img_values = values + img * N * Ch + c0;

  float T = 1.f;
  bool done = !inside;  // threads beyond the image edge still stage Gaussians, but never block the exit
  int last = 0;         // 1-based list position of the last blended Gaussian
  float out[CDIM];
#pragma unroll
  for (int k = 0; k < CDIM; ++k) out[k] = 0.f;

  for (int b0 = begin; b0 < end; b0 += block) {
    // Also the barrier that keeps this batch's staging from overwriting the previous one in use.
    if (__syncthreads_count(done) == block) break;
    const int j = b0 + tr;
    if (j < end) stage_gaussian<0>(s, tr, flat_ids[j], img, N, means2d, conics, opac, values, Ch, c0, 0);
    __syncthreads();
    const int count = end - b0 < block ? end - b0 : block;
    for (int t = 0; t < count && !done; ++t) {
      const float4 co = s.conic_opac[t];
      const float2 m = s.mean[t];
      const float al = blend_alpha(co.w, gaussian_sigma(co.x, co.y, co.z, px - m.x, py - m.y));
      // w = α·T > 0 exactly when the Gaussian is blended (α ≥ 1/255, T ≥ kTransmittanceMin).
      const float w = blend_step(al, T, done);
      if (w > 0.f) {
        const float* __restrict__ v = img_values + (int64_t)s.id[t] * Ch;
#pragma unroll
        for (int k = 0; k < CDIM; ++k)
          if (k < nch) out[k] += w * v[k];
        last = b0 - begin + t + 1;
      }
    }
  }

  if (!inside) return;
  const int64_t pix = (img * grid.height + y) * grid.width + x;
#pragma unroll
  for (int k = 0; k < CDIM; ++k)
    if (k < nch) image[pix * Ch + c0 + k] = out[k];
  if (blockIdx.z == 0) {
    alpha[pix] = 1.f - T;
    last_ids[pix] = last;
    final_T[pix] = T;
  }
}

}  // namespace

bool rasterize_tile_size_supported(int tile_size) {
  // Whole warps (the backward's shuffles assume full warps) and at most kMaxRasterThreads threads
  // (the backward's register use does not fit 1024-thread blocks).
  return tile_size * tile_size <= kMaxRasterThreads && (tile_size * tile_size) % 32 == 0;
}

void rasterize_forward(const float* means2d, const float* conics, const float* values, const float* opac,
                       const int32_t* tile_offsets, const int32_t* flat_ids, int64_t I, int64_t N, int64_t Ch,
                       int width, int height, int tile_size, float* image, float* alpha, int32_t* last_ids,
                       float* final_T, cudaStream_t stream) {
  const TileGrid grid = make_tile_grid(width, height, tile_size);
  const int64_t tiles = num_tiles(grid);
  if (I == 0 || tiles == 0) return;
  const int cdim = channel_chunk(Ch);
  const dim3 blocks((unsigned)tiles, (unsigned)I, (unsigned)num_channel_chunks(Ch, cdim));
  const dim3 threads(tile_size, tile_size, 1);
  const size_t shmem = shared_bytes(tile_size * tile_size, 0);  // 7 KiB for 16×16 tiles
  dispatch_channel_chunk(cdim, [&](auto c) {
    rasterize_forward_kernel<decltype(c)::value><<<blocks, threads, shmem, stream>>>(
        means2d, conics, values, opac, tile_offsets, flat_ids, N, Ch, grid, image, alpha, last_ids, final_T);
  });
}

}  // namespace cuda
}  // namespace splatnet

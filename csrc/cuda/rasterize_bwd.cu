// CUDA rasterizer, backward: one thread block per (image, tile, channel chunk), one thread per
// pixel, as in the forward. Each pixel walks its tile's list back to front starting at its own last
// contributor (saved by the forward), recovering the transmittance in front of each Gaussian from
// the saved final transmittance, T_i = T_{i+1} / (1 − α_i), and the colour accumulated behind it.
// Batches of blockDim Gaussians (with their values) are staged in shared memory, starting from the
// largest last contributor of the tile. Per Gaussian, the 32 pixels of a warp sum their gradients
// with shuffles and one lane issues the atomicAdds, so global atomics scale with warps, not pixels.
//
// Gradients (splatnet/blend.h): for pixel with output gradient v_out (per channel) and v_a (alpha),
//   dL/dvalue_i += α_i T_i v_out
//   dL/dα_i     += Σ_ch (value_i T_i − acc_i / (1 − α_i)) v_out + T_final / (1 − α_i) · v_a
// where acc_i = Σ_{j>i} value_j α_j T_j; then blend_alpha_vjp maps dL/dα_i to the opacity, conic
// and 2D mean. A channel chunk contributes its channels' share of dL/dα_i (the expression is linear
// in v_out) and only chunk 0 adds the v_a term, so the chunks' atomics sum to the full gradient.
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

// Lane 0 of the warp adds v (already warp-summed) to *dst; exact zeros are skipped.
__device__ inline void add_lane0(bool lane0, float* dst, float v) {
  if (lane0 && v != 0.f) atomicAdd(dst, v);
}

template <int CDIM>
__global__ void __launch_bounds__(kMaxRasterThreads) rasterize_backward_kernel(
    const float* __restrict__ means2d, const float* __restrict__ conics, const float* __restrict__ values,
    const float* __restrict__ opac, const int32_t* __restrict__ tile_offsets, const int32_t* __restrict__ flat_ids,
    const int32_t* __restrict__ last_ids, const float* __restrict__ final_T, const float* __restrict__ v_image,
    const float* __restrict__ v_alpha, int64_t N, int64_t Ch, TileGrid grid, float* __restrict__ g_means2d,
    float* __restrict__ g_conics, float* __restrict__ g_values, float* __restrict__ g_opac) {
  extern __shared__ float4 shared_mem[];
  __shared__ int tile_last;  // largest last contributor of the tile's pixels
  const int block = blockDim.x * blockDim.y;
  const StagedGaussians s = carve_shared(shared_mem, block, CDIM);

  const int64_t img = blockIdx.y;
  const int tile = blockIdx.x;
  const int c0 = blockIdx.z * CDIM;
  const int nch = Ch - c0 < CDIM ? (int)(Ch - c0) : CDIM;
  const int x = (tile % grid.tiles_x) * grid.tile_size + threadIdx.x;
  const int y = (tile / grid.tiles_x) * grid.tile_size + threadIdx.y;
  const bool inside = x < grid.width && y < grid.height;
  const float px = (float)x + 0.5f, py = (float)y + 0.5f;
  const int tr = threadIdx.y * blockDim.x + threadIdx.x;
  const bool lane0 = (tr & 31) == 0;

  const int64_t image_tile = img * num_tiles(grid) + tile;
  const int begin = tile_offsets[image_tile], end = tile_offsets[image_tile + 1];
  if (begin == end) return;  // block-uniform

  const int64_t pix = (img * grid.height + y) * grid.width + x;
  const float T_final = inside ? final_T[pix] : 1.f;
  const int last = inside ? last_ids[pix] : 0;
  // Only chunk 0 carries the alpha output's gradient (see the header comment).
  const float v_a = inside && blockIdx.z == 0 ? v_alpha[pix] : 0.f;
  float v_out[CDIM], acc[CDIM];
#pragma unroll
  for (int k = 0; k < CDIM; ++k) {
    v_out[k] = inside && k < nch ? v_image[pix * Ch + c0 + k] : 0.f;
    acc[k] = 0.f;
  }

  if (tr == 0) tile_last = 0;
  __syncthreads();
  const int w_last = warp_max(last);  // positions ≥ w_last concern no pixel of this warp
  if (lane0) atomicMax(&tile_last, w_last);
  __syncthreads();
  const int list_end = begin + tile_last;  // positions ≥ tile_last concern no pixel of the tile

  float T = T_final;  // transmittance behind the next Gaussian of the reverse walk
  for (int b_end = list_end; b_end > begin; b_end -= block) {
    __syncthreads();  // the previous batch is consumed before it is overwritten
    const int b_start = b_end - block > begin ? b_end - block : begin;
    // Slot t holds list index b_end − 1 − t: slot 0 is the furthest back.
    const int j = b_end - 1 - tr;
    if (j >= b_start)
      stage_gaussian<CDIM>(s, tr, flat_ids[j], img, N, means2d, conics, opac, values, Ch, c0, nch);
    __syncthreads();
    const int count = b_end - b_start;
    for (int t = 0; t < count; ++t) {
      const int pos = b_end - 1 - t - begin;  // 0-based position in the tile's list
      if (pos >= w_last) continue;            // warp-uniform
      const float4 co = s.conic_opac[t];
      const float2 m = s.mean[t];
      const float dx = px - m.x, dy = py - m.y;
      const float al = blend_alpha(co.w, gaussian_sigma(co.x, co.y, co.z, dx, dy));
      // Contributors of this pixel: before its last one, and not skipped by the 1/255 threshold
      // (the forward blended every such Gaussian until it stopped).
      const bool valid = pos < last && al >= kAlphaThreshold;
      if (!__any_sync(0xffffffffu, valid)) continue;

      float g_val[CDIM];
      AlphaGrad ag = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int k = 0; k < CDIM; ++k) g_val[k] = 0.f;
      if (valid) {
        const float ra = 1.f / (1.f - al);
        T = blend_transmittance_before(al, T);  // T_i, in front of this Gaussian
        const float w = al * T;
        float v_al = T_final * ra * v_a;
        const float* sv = s.values + t * CDIM;
#pragma unroll
        for (int k = 0; k < CDIM; ++k) {
          g_val[k] = w * v_out[k];
          v_al += (sv[k] * T - acc[k] * ra) * v_out[k];
          acc[k] += sv[k] * w;
        }
        ag = blend_alpha_vjp(co.w, co.x, co.y, co.z, dx, dy, v_al);
      }
      // Warp sums, then one atomicAdd per value from lane 0.
      const int64_t g = img * N + s.id[t];
#pragma unroll
      for (int k = 0; k < CDIM; ++k) {
        const float v = warp_sum(g_val[k]);
        if (k < nch) add_lane0(lane0, g_values + g * Ch + c0 + k, v);
      }
      const float s_o = warp_sum(ag.opac);
      const float s_a = warp_sum(ag.a);
      const float s_b = warp_sum(ag.b);
      const float s_c = warp_sum(ag.c);
      const float s_mx = warp_sum(ag.mx);
      const float s_my = warp_sum(ag.my);
      add_lane0(lane0, g_opac + g, s_o);
      add_lane0(lane0, g_conics + g * 3 + 0, s_a);
      add_lane0(lane0, g_conics + g * 3 + 1, s_b);
      add_lane0(lane0, g_conics + g * 3 + 2, s_c);
      add_lane0(lane0, g_means2d + g * 2 + 0, s_mx);
      add_lane0(lane0, g_means2d + g * 2 + 1, s_my);
    }
  }
}

}  // namespace

void rasterize_backward(const float* means2d, const float* conics, const float* values, const float* opac,
                        const int32_t* tile_offsets, const int32_t* flat_ids, const int32_t* last_ids,
                        const float* final_T, const float* v_image, const float* v_alpha, int64_t I, int64_t N,
                        int64_t Ch, int width, int height, int tile_size, float* g_means2d, float* g_conics,
                        float* g_values, float* g_opac, cudaStream_t stream) {
  const TileGrid grid = make_tile_grid(width, height, tile_size);
  const int64_t tiles = num_tiles(grid);
  if (I == 0 || tiles == 0) return;
  const int cdim = channel_chunk(Ch);
  const dim3 blocks((unsigned)tiles, (unsigned)I, (unsigned)num_channel_chunks(Ch, cdim));
  const dim3 threads(tile_size, tile_size, 1);
  dispatch_channel_chunk(cdim, [&](auto c) {
    constexpr int kCdim = decltype(c)::value;
    const size_t shmem = shared_bytes(tile_size * tile_size, kCdim);
    // At most 256 · (28 + 4 · 16) bytes = 23 KiB: under the 48 KiB default, no opt-in needed.
    rasterize_backward_kernel<kCdim><<<blocks, threads, shmem, stream>>>(means2d, conics, values, opac, tile_offsets, flat_ids, last_ids,
                                               final_T, v_image, v_alpha, N, Ch, grid, g_means2d, g_conics,
                                               g_values, g_opac);
  });
}

}  // namespace cuda
}  // namespace splatnet

// Host-callable entry points of the CUDA kernels (csrc/cuda/*.cu). Plain C++ with raw pointers and
// sizes, no torch: the .cu files compile with plain nvcc and the torch glue (csrc/cuda/*_host.cpp)
// validates inputs, allocates every buffer (CUB temp storage included) as a torch tensor and passes
// the current stream. All tensors are float32 / int32 / int64, contiguous, on the current device.
//
// Shapes use I = B·C images (scene b, camera c → image b·C + c) and NT = tiles_x·tiles_y tiles per
// image. Launch errors are left for the caller to check (cudaGetLastError); functions that call
// CUB return its cudaError_t.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace splatnet {
namespace cuda {

// -------------------------------------------------------------------------------------- checks.cu
constexpr int kMaxFiniteArrays = 8;

// Up to kMaxFiniteArrays float arrays (pointer, element count).
struct FiniteArrays {
  const float* ptr[kMaxFiniteArrays];
  int64_t count[kMaxFiniteArrays];
  int num;
};

// Sets flags[a] = 0 when array a holds a NaN or ±inf; flags [num] must be set to 1 by the caller.
void finite_flags(const FiniteArrays& arrays, int64_t* flags, cudaStream_t stream);

// ---------------------------------------------------------------------------------- projection.cu
// EWA projection + SH colour of B scenes × N Gaussians into B × C cameras (one thread per
// (scene, camera, Gaussian)). Every output element is written (culled Gaussians: zeros, except
// depths which is camera z for all).
void project_forward(const float* means,      // [B, N, 3]
                     const float* quats,      // [B, N, 4]
                     const float* scales,     // [B, N, 3]
                     const float* opacities,  // [B, N]
                     const float* sh,         // [B, N, K, 3]
                     const float* viewmats,   // [B, C, 4, 4]
                     const float* Ks,         // [B, C, 3, 3]
                     int64_t B, int64_t C, int64_t N, int64_t K, int width, int height, int sh_degree,
                     float near_plane, float far_plane, bool antialiased,
                     float* means2d,  // [B, C, N, 2]
                     float* conics,   // [B, C, N, 3]
                     float* depths,   // [B, C, N]
                     int32_t* radii,  // [B, C, N, 2]
                     float* opac,     // [B, C, N]
                     float* colors,   // [B, C, N, 3]
                     cudaStream_t stream);

// Backward of project_forward (one thread per (scene, Gaussian), looping over the cameras: no
// atomics). Writes g_means, g_quats, g_scales, g_opacities; ADDS to g_sh, which must be zeroed.
void project_backward(const float* means, const float* quats, const float* scales, const float* opacities,
                      const float* sh, const float* viewmats, const float* Ks, int64_t B, int64_t C, int64_t N,
                      int64_t K, int width, int height, int sh_degree, bool antialiased,
                      const int32_t* radii,      // [B, C, N, 2]
                      const float* v_means2d,    // [B, C, N, 2]
                      const float* v_conics,     // [B, C, N, 3]
                      const float* v_depths,     // [B, C, N]
                      const float* v_opac,       // [B, C, N]
                      const float* v_colors,     // [B, C, N, 3]
                      float* g_means,            // [B, N, 3]
                      float* g_quats,            // [B, N, 4]
                      float* g_scales,           // [B, N, 3]
                      float* g_opacities,        // [B, N]
                      float* g_sh,               // [B, N, K, 3], zeroed by the caller
                      cudaStream_t stream);

// -------------------------------------------------------------------------- rasterize_binning.cu
// Number of tiles each of the I·N (image, Gaussian) pairs touches (0 when culled / off-screen).
void count_tiles(const float* means2d,  // [I, N, 2]
                 const int32_t* radii,  // [I, N, 2]
                 int64_t count,         // I·N
                 int width, int height, int tile_size,
                 int64_t* tiles_per_gaussian,  // [I·N]
                 cudaStream_t stream);

// CUB inclusive prefix sum of int64 (temp_bytes query with temp == nullptr, as CUB does).
cudaError_t inclusive_sum(void* temp, size_t& temp_bytes, const int64_t* in, int64_t* out, int count,
                          cudaStream_t stream);

// One (key, id) pair per (image, tile, Gaussian) intersection, at the Gaussian's slot given by the
// inclusive prefix sum cum_tiles: key = (image·NT + tile) << 32 | depth_sort_key(depth),
// id = Gaussian index n within its image (so equal depths keep the order of n: the sort is stable).
void emit_keys(const float* means2d,     // [I, N, 2]
               const int32_t* radii,     // [I, N, 2]
               const float* depths,      // [I, N]
               const int64_t* cum_tiles, // [I·N] inclusive prefix sum of count_tiles
               int64_t I, int64_t N, int width, int height, int tile_size,
               uint64_t* keys,           // [M]
               int32_t* ids,             // [M]
               cudaStream_t stream);

// The least end bit of the sort: 32 depth bits + enough bits for image·NT + tile.
int sort_end_bit(int64_t num_image_tiles);

// CUB radix sort of (key, id) pairs on bits [0, end_bit), double-buffered (keys/ids and their
// *_alt twins are both overwritten). Sets result_in_alt to say which buffers hold the sorted pairs.
// temp_bytes query with temp == nullptr.
cudaError_t sort_pairs(void* temp, size_t& temp_bytes, uint64_t* keys, uint64_t* keys_alt, int32_t* ids,
                       int32_t* ids_alt, int count, int end_bit, bool& result_in_alt, cudaStream_t stream);

// offsets[t] = first index of image-tile t in the sorted keys, offsets[num_image_tiles] = M, so
// image-tile t owns [offsets[t], offsets[t + 1]). Any M ≥ 0 (sorted_keys may be null when M = 0).
void tile_offsets(const uint64_t* sorted_keys, int count, int64_t num_image_tiles,
                  int32_t* offsets,  // [num_image_tiles + 1]
                  cudaStream_t stream);

// ---------------------------------------------------------------------- rasterize_{fwd,bwd}.cu
// Whether the rasterizer kernels support this tile size (one thread block of tile_size² threads per
// tile: whole warps, at most 256 threads, i.e. 8 or 16).
bool rasterize_tile_size_supported(int tile_size);

// Front-to-back blending of generic channels. Every pixel of every output is written.
void rasterize_forward(const float* means2d,       // [I, N, 2]
                       const float* conics,        // [I, N, 3]
                       const float* values,        // [I, N, Ch]
                       const float* opac,          // [I, N]
                       const int32_t* tile_offsets,  // [I·NT + 1]
                       const int32_t* flat_ids,      // [M]
                       int64_t I, int64_t N, int64_t Ch, int width, int height, int tile_size,
                       float* image,      // [I, H, W, Ch]
                       float* alpha,      // [I, H, W]
                       int32_t* last_ids, // [I, H, W] 1-based list position of the last contributor, 0 = none
                       float* final_T,    // [I, H, W]
                       cudaStream_t stream);

// Backward: each pixel walks its tile's list back to front from its last contributor. ADDS to the
// four gradient outputs, which must be zeroed.
void rasterize_backward(const float* means2d, const float* conics, const float* values, const float* opac,
                        const int32_t* tile_offsets, const int32_t* flat_ids, const int32_t* last_ids,
                        const float* final_T,
                        const float* v_image,  // [I, H, W, Ch]
                        const float* v_alpha,  // [I, H, W]
                        int64_t I, int64_t N, int64_t Ch, int width, int height, int tile_size,
                        float* g_means2d,  // [I, N, 2]
                        float* g_conics,   // [I, N, 3]
                        float* g_values,   // [I, N, Ch]
                        float* g_opac,     // [I, N]
                        cudaStream_t stream);

}  // namespace cuda
}  // namespace splatnet

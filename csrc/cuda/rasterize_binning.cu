// CUDA tile binning: count the tiles each (image, Gaussian) touches, prefix-sum the counts (CUB),
// emit one 64-bit key per intersection — (image·NT + tile) in the upper 32 bits, the depth's
// order-preserving bits in the lower 32 — radix-sort the keys with their Gaussian ids (CUB, only
// the significant bits), then find each image-tile's range in the sorted list.
//
// The tile rectangle and the keys come from splatnet/tiles.h, shared with the CPU binning; the
// radix sort is stable and ids are emitted in increasing n, so ties in depth keep the order of n as
// the CPU's sort on (depth key, n) does.
#include <cuda_runtime.h>

#include <cub/cub.cuh>
#include <cstdint>

#include "launchers.h"
#include "splatnet/tiles.h"

namespace splatnet {
namespace cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned int num_blocks(int64_t n) { return (unsigned int)((n + kThreads - 1) / kThreads); }

__global__ void count_tiles_kernel(const float* __restrict__ means2d, const int32_t* __restrict__ radii,
                                   int64_t count, TileGrid grid, int64_t* __restrict__ tiles_per_gaussian) {
  const int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= count) return;
  int x0, x1, y0, y1;
  const bool hit = tile_rect(means2d[o * 2], means2d[o * 2 + 1], radii[o * 2], radii[o * 2 + 1], grid, x0, x1,
                             y0, y1);
  tiles_per_gaussian[o] = hit ? (int64_t)(x1 - x0) * (y1 - y0) : 0;
}

__global__ void emit_keys_kernel(const float* __restrict__ means2d, const int32_t* __restrict__ radii,
                                 const float* __restrict__ depths, const int64_t* __restrict__ cum_tiles,
                                 int64_t I, int64_t N, TileGrid grid, uint64_t* __restrict__ keys,
                                 int32_t* __restrict__ ids) {
  const int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= I * N) return;
  int x0, x1, y0, y1;
  if (!tile_rect(means2d[o * 2], means2d[o * 2 + 1], radii[o * 2], radii[o * 2 + 1], grid, x0, x1, y0, y1))
    return;
  const int64_t img = o / N;
  const int32_t n = (int32_t)(o % N);
  const int64_t image_tile0 = img * num_tiles(grid);
  const float depth = depths[o];
  int64_t slot = o == 0 ? 0 : cum_tiles[o - 1];
  for (int ty = y0; ty < y1; ++ty) {
    for (int tx = x0; tx < x1; ++tx) {
      keys[slot] = intersection_key(image_tile0 + (int64_t)ty * grid.tiles_x + tx, depth);
      ids[slot] = n;
      ++slot;
    }
  }
}

// offsets[t] = lower bound of first_intersection_key(t) in the sorted keys: the first intersection
// of image-tile t (or of the next non-empty one); offsets[num_image_tiles] = count. One thread per
// entry, a binary search each: uniform work, however sparse the tiles.
__global__ void tile_offsets_kernel(const uint64_t* __restrict__ sorted_keys, int count, int64_t num_image_tiles,
                                    int32_t* __restrict__ offsets) {
  const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t > num_image_tiles) return;
  const uint64_t target = first_intersection_key(t);
  int lo = 0, hi = count;  // invariant: keys[< lo] < target <= keys[>= hi]
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (sorted_keys[mid] < target)
      lo = mid + 1;
    else
      hi = mid;
  }
  offsets[t] = lo;
}

}  // namespace

void count_tiles(const float* means2d, const int32_t* radii, int64_t count, int width, int height, int tile_size,
                 int64_t* tiles_per_gaussian, cudaStream_t stream) {
  if (count == 0) return;
  count_tiles_kernel<<<num_blocks(count), kThreads, 0, stream>>>(
      means2d, radii, count, make_tile_grid(width, height, tile_size), tiles_per_gaussian);
}

cudaError_t inclusive_sum(void* temp, size_t& temp_bytes, const int64_t* in, int64_t* out, int count,
                          cudaStream_t stream) {
  return cub::DeviceScan::InclusiveSum(temp, temp_bytes, in, out, count, stream);
}

void emit_keys(const float* means2d, const int32_t* radii, const float* depths, const int64_t* cum_tiles,
               int64_t I, int64_t N, int width, int height, int tile_size, uint64_t* keys, int32_t* ids,
               cudaStream_t stream) {
  if (I * N == 0) return;
  emit_keys_kernel<<<num_blocks(I * N), kThreads, 0, stream>>>(
      means2d, radii, depths, cum_tiles, I, N, make_tile_grid(width, height, tile_size), keys, ids);
}

int sort_end_bit(int64_t num_image_tiles) {
  int bits = 0;
  while (bits < 32 && ((int64_t)1 << bits) < num_image_tiles) ++bits;  // image-tile ids < 2^bits
  return 32 + bits;
}

cudaError_t sort_pairs(void* temp, size_t& temp_bytes, uint64_t* keys, uint64_t* keys_alt, int32_t* ids,
                       int32_t* ids_alt, int count, int end_bit, bool& result_in_alt, cudaStream_t stream) {
  cub::DoubleBuffer<uint64_t> d_keys(keys, keys_alt);
  cub::DoubleBuffer<int32_t> d_ids(ids, ids_alt);
  const cudaError_t err =
      cub::DeviceRadixSort::SortPairs(temp, temp_bytes, d_keys, d_ids, count, 0, end_bit, stream);
  // The selector is set on the host from the number of passes; keys and ids always move together.
  result_in_alt = d_keys.selector == 1;
  return err;
}

void tile_offsets(const uint64_t* sorted_keys, int count, int64_t num_image_tiles, int32_t* offsets,
                  cudaStream_t stream) {
  tile_offsets_kernel<<<num_blocks(num_image_tiles + 1), kThreads, 0, stream>>>(sorted_keys, count,
                                                                                 num_image_tiles, offsets);
}

}  // namespace cuda
}  // namespace splatnet

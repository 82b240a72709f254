// Tile binning geometry and sort keys, shared by the CPU op (csrc/cpu/rasterize.cpp) and the CUDA
// kernels (csrc/cuda/rasterize_*.cu): written once as SPLATNET_HD functions so that both back ends
// bin a Gaussian into the same tiles and order each tile's list the same way.
//
// Plain C++ only (no torch): compiled by g++ and nvcc.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "splatnet/constants.h"

namespace splatnet {

// a / b rounded to nearest even under nvcc's --use_fast_math too (which otherwise turns '/' into
// an approximate division), so tile bounds are bit-identical on host and device.
SPLATNET_HD inline float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// Screen tiling of one image: tiles_x × tiles_y tiles of tile_size² pixels (edge tiles clipped).
// Tile t of an image is (t mod tiles_x, t div tiles_x); its pixels start at tile_size · that.
struct TileGrid {
  int width, height, tile_size, tiles_x, tiles_y;
};

SPLATNET_HD inline TileGrid make_tile_grid(int width, int height, int tile_size) {
  TileGrid g;
  g.width = width;
  g.height = height;
  g.tile_size = tile_size;
  g.tiles_x = (width + tile_size - 1) / tile_size;
  g.tiles_y = (height + tile_size - 1) / tile_size;
  return g;
}

// Tiles per image (int64: the product may exceed int32 before the ops' range checks reject it).
SPLATNET_HD inline int64_t num_tiles(const TileGrid& g) { return (int64_t)g.tiles_x * g.tiles_y; }

SPLATNET_HD inline int clamp_tile(float v, int hi) {
  return (int)(v < 0.f ? 0.f : (v > (float)hi ? (float)hi : v));
}

// Tiles [x0, x1) × [y0, y1) touched by the screen box (mean ± radii) of a Gaussian; false when the
// Gaussian is culled (a radius ≤ 0) or the box misses the image.
SPLATNET_HD inline bool tile_rect(float mx, float my, int rx, int ry, const TileGrid& g, int& x0, int& x1,
                                  int& y0, int& y1) {
  if (rx <= 0 || ry <= 0) {
    x0 = x1 = y0 = y1 = 0;
    return false;
  }
  const float ts = (float)g.tile_size, frx = (float)rx, fry = (float)ry;
  x0 = clamp_tile(floorf(div_rn(mx - frx, ts)), g.tiles_x);
  x1 = clamp_tile(ceilf(div_rn(mx + frx, ts)), g.tiles_x);
  y0 = clamp_tile(floorf(div_rn(my - fry, ts)), g.tiles_y);
  y1 = clamp_tile(ceilf(div_rn(my + fry, ts)), g.tiles_y);
  return x1 > x0 && y1 > y0;
}

// Order-preserving map of a float to uint32: sorting the keys as unsigned integers sorts the floats
// (negative ones included), so a sort on (…, depth key) sorts by depth.
SPLATNET_HD inline uint32_t depth_sort_key(float f) {
  uint32_t u;
#ifdef __CUDA_ARCH__
  u = __float_as_uint(f);
#else
  memcpy(&u, &f, sizeof(u));
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// ---------------------------------------------------------------------------------------------
// Sort keys. Both back ends order a tile's list by depth, ties by the Gaussian's index n in its
// image (so CPU and CUDA produce identical flat_ids):
// - CUDA sorts all intersections of a call at once: key = (image·NT + tile) << 32 | depth key,
//   value n; the radix sort is stable and the keys are emitted in increasing n, which breaks ties.
// - the CPU sorts each tile's list on its own: key = depth key << 32 | n, where n breaks ties.

// Key of one (image-tile, Gaussian) intersection for the CUDA sort; image_tile = image·NT + tile.
SPLATNET_HD inline uint64_t intersection_key(int64_t image_tile, float depth) {
  return ((uint64_t)image_tile << 32) | (uint64_t)depth_sort_key(depth);
}

// The smallest intersection key of image-tile t: where its run starts in the sorted keys.
SPLATNET_HD inline uint64_t first_intersection_key(int64_t image_tile) { return (uint64_t)image_tile << 32; }

// Key of Gaussian n within one tile's list for the CPU's per-tile sort, and n back from it.
SPLATNET_HD inline uint64_t depth_id_key(float depth, int32_t n) {
  return ((uint64_t)depth_sort_key(depth) << 32) | (uint64_t)(uint32_t)n;
}

SPLATNET_HD inline int32_t depth_id_key_id(uint64_t key) { return (int32_t)(uint32_t)(key & 0xffffffffu); }

}  // namespace splatnet

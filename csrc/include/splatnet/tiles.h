// Camera assembly, tile binning geometry and depth sort keys shared by the CUDA kernels (and
// usable by the CPU ops): the same rules as csrc/cpu/rasterize.cpp, written once as SPLATNET_HD
// functions so that both back ends bin a Gaussian into the same tiles and sort ties the same way.
//
// Plain C++ only (no torch): compiled by g++ and nvcc.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "splatnet/constants.h"
#include "splatnet/projection.h"

namespace splatnet {

// Camera from a row-major world→camera matrix [4, 4] (OpenCV) and row-major intrinsics [3, 3].
SPLATNET_HD inline Camera camera_from_matrices(const float* viewmat, const float* K, int width, int height) {
  Camera cam;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) cam.R[3 * i + j] = viewmat[4 * i + j];
    cam.t[i] = viewmat[4 * i + 3];
  }
  cam.fx = K[0];
  cam.fy = K[4];
  cam.cx = K[2];
  cam.cy = K[5];
  cam.width = width;
  cam.height = height;
  return cam;
}

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

SPLATNET_HD inline int clamp_tile(float v, int hi) {
  return (int)(v < 0.f ? 0.f : (v > (float)hi ? (float)hi : v));
}

// Tiles [x0, x1) × [y0, y1) touched by the screen box (mean ± radii) of a Gaussian; false when the
// Gaussian is culled (a radius ≤ 0) or the box misses the image. Same rule as the CPU binning.
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
// (negative ones included), so a radix sort on (…, depth key) sorts by depth.
SPLATNET_HD inline uint32_t depth_sort_key(float f) {
  uint32_t u;
#ifdef __CUDA_ARCH__
  u = __float_as_uint(f);
#else
  memcpy(&u, &f, sizeof(u));
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

}  // namespace splatnet

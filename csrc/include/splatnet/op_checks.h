// Argument checks of the splatnet ops, one definition for both back ends: the CPU ops
// (csrc/cpu/*.cpp) and the CUDA ops' host code (csrc/cuda/*_host.cpp) call the same functions with
// their device type. Host code only (ATen; never compiled by nvcc). Every message names the op, the
// argument and the problem. Checks that differ by back end (supported tile sizes, launch-grid and
// int32 limits, how finiteness is tested) stay in the back end's file.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <utility>

#include "splatnet/constants.h"
#include "splatnet/sh.h"
#include "splatnet/tiles.h"

namespace splatnet {

inline std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

// Checks dtype, device type, contiguity and shape (-1 in `shape` matches any size).
inline void check_tensor(const at::Tensor& t, const char* op, const char* name, at::ScalarType dtype,
                         c10::DeviceType device, std::initializer_list<int64_t> shape) {
  TORCH_CHECK(t.defined(), op, ": argument '", name, "' is undefined");
  TORCH_CHECK(t.device().type() == device, op, ": argument '", name, "' must be on ",
              c10::DeviceTypeName(device), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, op, ": argument '", name, "' must be ", c10::toString(dtype),
              ", got ", t.scalar_type());
  bool ok = (int64_t)shape.size() == t.dim();
  if (ok) {
    int i = 0;
    for (int64_t s : shape) {
      if (s >= 0 && t.size(i) != s) ok = false;
      ++i;
    }
  }
  if (!ok) {
    std::ostringstream want;
    want << "[";
    int i = 0;
    for (int64_t s : shape) {
      want << (i++ ? ", " : "");
      if (s >= 0) want << s; else want << "*";
    }
    want << "]";
    TORCH_CHECK(false, op, ": argument '", name, "' must have shape ", want.str(), ", got ",
                shape_str(t.sizes()));
  }
  TORCH_CHECK(t.is_contiguous(), op, ": argument '", name, "' must be contiguous (call .contiguous())");
}

// Raises naming the argument when a CPU float32 tensor holds NaN or ±inf.
inline void check_finite_cpu(const at::Tensor& t, const char* op, const char* name) {
  const float* p = t.data_ptr<float>();
  int64_t n = t.numel();
  if (n == 0) return;
  std::atomic<int64_t> bad{-1};
  // Grain large enough that small tensors stay on the calling thread.
  at::parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
    // x · 0 is NaN iff x is NaN or ±inf; eight independent lanes so that the loop vectorises.
    float lanes[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int64_t i = lo;
    for (; i + 8 <= hi; i += 8)
      for (int l = 0; l < 8; ++l) lanes[l] += p[i + l] * 0.f;
    float acc = 0.f;
    for (; i < hi; ++i) acc += p[i] * 0.f;
    for (int l = 0; l < 8; ++l) acc += lanes[l];
    if (acc != 0.f || std::isnan(acc)) {
      for (int64_t i = lo; i < hi; ++i)
        if (!std::isfinite(p[i])) {
          bad.store(i);  // any offending index will do for the message
          break;
        }
    }
  });
  TORCH_CHECK(bad.load() < 0, op, ": argument '", name, "' contains a non-finite value (NaN or inf) at flat index ",
              bad.load());
}

using NamedTensor = std::pair<const char*, const at::Tensor*>;

// All tensors on the device of the first one (always true for CPU tensors).
inline void check_same_device(const char* op, std::initializer_list<NamedTensor> tensors) {
  const NamedTensor& first = *tensors.begin();
  for (const NamedTensor& t : tensors)
    TORCH_CHECK(t.second->device() == first.second->device(), op, ": argument '", t.first, "' is on ",
                t.second->device(), " but '", first.first, "' is on ", first.second->device());
}

// ---------------------------------------------------------------------------------------------
// project_forward / project_backward

struct ProjectDims {
  int64_t B, N, C, K;  // scenes, Gaussians per scene, cameras per scene, SH coefficients per channel
};

// The inputs both project ops take (the Gaussians, the cameras and the scalars).
inline ProjectDims check_project_inputs(const char* op, const at::Tensor& means, const at::Tensor& quats,
                                        const at::Tensor& scales, const at::Tensor& opacities,
                                        const at::Tensor& sh, const at::Tensor& viewmats, const at::Tensor& Ks,
                                        int64_t width, int64_t height, int64_t sh_degree, c10::DeviceType dev) {
  const auto f32 = at::kFloat;
  TORCH_CHECK(means.dim() == 3, op, ": argument 'means' must have shape [B, N, 3], got ", shape_str(means.sizes()));
  TORCH_CHECK(viewmats.dim() == 4, op, ": argument 'viewmats' must have shape [B, C, 4, 4], got ",
              shape_str(viewmats.sizes()));
  TORCH_CHECK(sh.dim() == 4, op, ": argument 'sh' must have shape [B, N, K, 3], got ", shape_str(sh.sizes()));
  ProjectDims d{means.size(0), means.size(1), viewmats.size(1), sh.size(2)};
  check_tensor(means, op, "means", f32, dev, {d.B, d.N, 3});
  check_tensor(quats, op, "quats", f32, dev, {d.B, d.N, 4});
  check_tensor(scales, op, "scales", f32, dev, {d.B, d.N, 3});
  check_tensor(opacities, op, "opacities", f32, dev, {d.B, d.N});
  check_tensor(sh, op, "sh", f32, dev, {d.B, d.N, d.K, 3});
  check_tensor(viewmats, op, "viewmats", f32, dev, {d.B, d.C, 4, 4});
  check_tensor(Ks, op, "Ks", f32, dev, {d.B, d.C, 3, 3});
  check_same_device(op, {{"means", &means}, {"quats", &quats}, {"scales", &scales}, {"opacities", &opacities},
                         {"sh", &sh}, {"viewmats", &viewmats}, {"Ks", &Ks}});
  TORCH_CHECK(width > 0 && height > 0, op, ": width and height must be positive, got ", width, " x ", height);
  TORCH_CHECK(sh_degree >= 0 && sh_degree <= kMaxSHDegree, op, ": sh_degree must be in 0..", kMaxSHDegree,
              ", got ", sh_degree);
  TORCH_CHECK(d.K >= sh_num_bases((int)sh_degree), op, ": sh_degree ", sh_degree, " needs ",
              sh_num_bases((int)sh_degree), " SH coefficients per channel, 'sh' has ", d.K);
  return d;
}

// project_backward's forward output and output gradients (after check_project_inputs).
inline void check_project_grads(const char* op, const ProjectDims& d, const at::Tensor& means,
                                const at::Tensor& radii, const at::Tensor& v_means2d, const at::Tensor& v_conics,
                                const at::Tensor& v_depths, const at::Tensor& v_opac, const at::Tensor& v_colors,
                                c10::DeviceType dev) {
  const int64_t B = d.B, C = d.C, N = d.N;
  check_tensor(radii, op, "radii", at::kInt, dev, {B, C, N, 2});
  check_tensor(v_means2d, op, "v_means2d", at::kFloat, dev, {B, C, N, 2});
  check_tensor(v_conics, op, "v_conics", at::kFloat, dev, {B, C, N, 3});
  check_tensor(v_depths, op, "v_depths", at::kFloat, dev, {B, C, N});
  check_tensor(v_opac, op, "v_opac", at::kFloat, dev, {B, C, N});
  check_tensor(v_colors, op, "v_colors", at::kFloat, dev, {B, C, N, 3});
  check_same_device(op, {{"means", &means}, {"radii", &radii}, {"v_means2d", &v_means2d}, {"v_conics", &v_conics},
                         {"v_depths", &v_depths}, {"v_opac", &v_opac}, {"v_colors", &v_colors}});
}

// ---------------------------------------------------------------------------------------------
// rasterize_forward / rasterize_backward

// Largest tile_size any back end accepts (the CPU op's per-tile buffers are sized from it).
constexpr int64_t kMaxTileSize = 64;

struct RasterDims {
  int64_t B, C, N, Ch;  // scenes, cameras per scene, Gaussians per image, channels
  int64_t I;            // images, B·C
  TileGrid grid;
  int64_t num_tiles;    // tiles per image
};

// The inputs both rasterize ops take. tile_size_ok says whether the back end supports tile_size
// (1 ≤ tile_size ≤ kMaxTileSize is required of every back end on top of it); tile_size_rule is the
// message when it does not ("tile_size must be ...").
inline RasterDims check_raster_inputs(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                      const at::Tensor& values, const at::Tensor& opac, const at::Tensor& radii,
                                      int64_t width, int64_t height, int64_t tile_size, c10::DeviceType dev,
                                      bool tile_size_ok, const std::string& tile_size_rule) {
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  TORCH_CHECK(means2d.dim() == 4, op, ": argument 'means2d' must have shape [B, C, N, 2], got ",
              shape_str(means2d.sizes()));
  TORCH_CHECK(values.dim() == 4, op, ": argument 'values' must have shape [B, C, N, Ch], got ",
              shape_str(values.sizes()));
  RasterDims d;
  d.B = means2d.size(0);
  d.C = means2d.size(1);
  d.N = means2d.size(2);
  d.Ch = values.size(3);
  d.I = d.B * d.C;
  check_tensor(means2d, op, "means2d", at::kFloat, dev, {d.B, d.C, d.N, 2});
  check_tensor(conics, op, "conics", at::kFloat, dev, {d.B, d.C, d.N, 3});
  check_tensor(values, op, "values", at::kFloat, dev, {d.B, d.C, d.N, d.Ch});
  check_tensor(opac, op, "opac", at::kFloat, dev, {d.B, d.C, d.N});
  check_tensor(radii, op, "radii", at::kInt, dev, {d.B, d.C, d.N, 2});
  check_same_device(op, {{"means2d", &means2d}, {"conics", &conics}, {"values", &values}, {"opac", &opac},
                         {"radii", &radii}});
  TORCH_CHECK(width > 0 && height > 0 && width <= kInt32Max && height <= kInt32Max, op,
              ": width and height must be positive, got ", width, " x ", height);
  TORCH_CHECK(tile_size >= 1 && tile_size <= kMaxTileSize && tile_size_ok, op, ": ", tile_size_rule, ", got ",
              tile_size);
  d.grid = make_tile_grid((int)width, (int)height, (int)tile_size);
  d.num_tiles = num_tiles(d.grid);
  return d;
}

// rasterize_forward's depths (after check_raster_inputs).
inline void check_raster_depths(const char* op, const RasterDims& d, const at::Tensor& means2d,
                                const at::Tensor& depths, c10::DeviceType dev) {
  check_tensor(depths, op, "depths", at::kFloat, dev, {d.B, d.C, d.N});
  check_same_device(op, {{"means2d", &means2d}, {"depths", &depths}});
}

// rasterize_backward's saved forward outputs and output gradients (after check_raster_inputs).
inline void check_raster_grads(const char* op, const RasterDims& d, const at::Tensor& means2d,
                               const at::Tensor& tile_offsets, const at::Tensor& flat_ids,
                               const at::Tensor& last_ids, const at::Tensor& final_T, const at::Tensor& v_image,
                               const at::Tensor& v_alpha, c10::DeviceType dev) {
  const int64_t B = d.B, C = d.C, H = d.grid.height, W = d.grid.width;
  check_tensor(tile_offsets, op, "tile_offsets", at::kInt, dev, {d.I * d.num_tiles + 1});
  check_tensor(flat_ids, op, "flat_ids", at::kInt, dev, {-1});
  check_tensor(last_ids, op, "last_ids", at::kInt, dev, {B, C, H, W});
  check_tensor(final_T, op, "final_T", at::kFloat, dev, {B, C, H, W});
  check_tensor(v_image, op, "v_image", at::kFloat, dev, {B, C, H, W, d.Ch});
  check_tensor(v_alpha, op, "v_alpha", at::kFloat, dev, {B, C, H, W, 1});
  check_same_device(op, {{"means2d", &means2d}, {"tile_offsets", &tile_offsets}, {"flat_ids", &flat_ids},
                         {"last_ids", &last_ids}, {"final_T", &final_T}, {"v_image", &v_image},
                         {"v_alpha", &v_alpha}});
}

}  // namespace splatnet

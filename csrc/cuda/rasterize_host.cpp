// CUDA implementation of splatnet.rasterize_forward / rasterize_backward (schemas in csrc/ext.cpp;
// the same outputs as the CPU op and the same meaning of the saved tensors):
//   tile_offsets [B·C·TH·TW + 1] int32: tile t of image i owns flat_ids[off[i·NT + t] : off[i·NT + t + 1]]
//   flat_ids [M] int32: Gaussian index n within its image, each tile's run sorted by depth (ties by n)
//   last_ids [B, C, H, W] int32: 1-based list position of the pixel's last blended Gaussian (0: none)
//   final_T [B, C, H, W]: transmittance after that Gaussian
// Binning (rasterize_binning.cu): count tiles per Gaussian → CUB prefix sum → one device→host read
// of the number of intersections M (the only sync, shared with the finite-input check) → keys → CUB
// radix sort → tile offsets. Every buffer, CUB's temp storage included, is a torch tensor from the
// caching allocator; every kernel runs on the current stream. Compiled only with WITH_CUDA.
#ifdef WITH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <tuple>

#include "checks_host.h"
#include "launchers.h"
#include "splatnet/op_checks.h"
#include "splatnet/tiles.h"

namespace splatnet {
namespace {

constexpr const char* kFwd = "splatnet.rasterize_forward (CUDA)";
constexpr const char* kBwd = "splatnet.rasterize_backward (CUDA)";
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// The shared checks (splatnet/op_checks.h) with this back end's tile sizes, then the limits of the
// launch grid (images on blockIdx.y, channel chunks on blockIdx.z), of the int32 lists and of the
// 32 key bits that hold image·NT + tile.
RasterDims check_raster_inputs_cuda(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                    const at::Tensor& values, const at::Tensor& opac, const at::Tensor& radii,
                                    int64_t width, int64_t height, int64_t tile_size) {
  const bool tile_size_ok = tile_size >= 1 && tile_size <= kMaxTileSize &&
                            cuda::rasterize_tile_size_supported((int)tile_size);
  const RasterDims d = check_raster_inputs(
      op, means2d, conics, values, opac, radii, width, height, tile_size, c10::DeviceType::CUDA, tile_size_ok,
      "the CUDA rasterizer supports tile_size 8 or 16 (one thread per pixel, whole warps, at most 256 threads "
      "per tile)");
  TORCH_CHECK(d.I <= 65535, op, ": at most 65535 images (B·C) per call, got ", d.I);
  TORCH_CHECK(d.Ch <= 16 * 65535, op, ": too many channels (", d.Ch, ")");
  TORCH_CHECK(d.I * d.N <= kInt32Max, op, ": B·C·N = ", d.I * d.N,
              " exceeds the int32 range; render fewer cameras or Gaussians per call");
  TORCH_CHECK(d.I * d.num_tiles < kInt32Max, op, ": B·C·tiles = ", d.I * d.num_tiles,
              " exceeds the int32 range; render fewer or smaller images per call");
  return d;
}

// Double-buffered CUB radix sort of (key, id) pairs; returns (sorted keys, sorted ids).
std::tuple<at::Tensor, at::Tensor> sort_intersections(at::Tensor keys, at::Tensor ids, int64_t num_image_tiles,
                                                      cudaStream_t stream) {
  const int count = (int)keys.numel();
  auto keys_alt = at::empty_like(keys);
  auto ids_alt = at::empty_like(ids);
  auto* k0 = reinterpret_cast<uint64_t*>(keys.data_ptr<int64_t>());
  auto* k1 = reinterpret_cast<uint64_t*>(keys_alt.data_ptr<int64_t>());
  const int end_bit = cuda::sort_end_bit(num_image_tiles);
  bool in_alt = false;
  size_t temp_bytes = 0;
  C10_CUDA_CHECK(cuda::sort_pairs(nullptr, temp_bytes, k0, k1, ids.data_ptr<int32_t>(), ids_alt.data_ptr<int32_t>(),
                                  count, end_bit, in_alt, stream));
  auto temp = at::empty({(int64_t)temp_bytes}, keys.options().dtype(at::kByte));
  C10_CUDA_CHECK(cuda::sort_pairs(temp.data_ptr(), temp_bytes, k0, k1, ids.data_ptr<int32_t>(),
                                  ids_alt.data_ptr<int32_t>(), count, end_bit, in_alt, stream));
  return in_alt ? std::make_tuple(keys_alt, ids_alt) : std::make_tuple(keys, ids);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_forward_cuda(
    const at::Tensor& means2d,  // [B, C, N, 2]
    const at::Tensor& conics,   // [B, C, N, 3]
    const at::Tensor& values,   // [B, C, N, Ch]
    const at::Tensor& opac,     // [B, C, N]
    const at::Tensor& depths,   // [B, C, N]
    const at::Tensor& radii,    // [B, C, N, 2] int32
    int64_t width, int64_t height, int64_t tile_size) {
  const RasterDims d = check_raster_inputs_cuda(kFwd, means2d, conics, values, opac, radii, width, height,
                                                tile_size);
  check_raster_depths(kFwd, d, means2d, depths, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(means2d.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t I = d.I, N = d.N, Ch = d.Ch, H = height, W = width;
  const int64_t IN = I * N, num_image_tiles = I * d.num_tiles;
  const int w = (int)width, h = (int)height, ts = (int)tile_size;
  auto opts = means2d.options();

  // Tiles per (image, Gaussian) and their inclusive prefix sum.
  auto counts = at::empty({IN}, opts.dtype(at::kLong));
  auto cum = at::empty({IN}, opts.dtype(at::kLong));
  if (IN > 0) {
    cuda::count_tiles(means2d.data_ptr<float>(), radii.data_ptr<int32_t>(), IN, w, h, ts,
                      counts.data_ptr<int64_t>(), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    size_t temp_bytes = 0;
    C10_CUDA_CHECK(cuda::inclusive_sum(nullptr, temp_bytes, counts.data_ptr<int64_t>(), cum.data_ptr<int64_t>(),
                                       (int)IN, stream));
    auto temp = at::empty({(int64_t)temp_bytes}, opts.dtype(at::kByte));
    C10_CUDA_CHECK(cuda::inclusive_sum(temp.data_ptr(), temp_bytes, counts.data_ptr<int64_t>(),
                                       cum.data_ptr<int64_t>(), (int)IN, stream));
  }

  // The finite-input flags and M travel to the host together: the op's one sync. (Counting before
  // the check is harmless: tile_rect clamps every bound to the tile grid, even for NaN means.)
  const std::initializer_list<NamedTensor> named = {
      {"means2d", &means2d}, {"conics", &conics}, {"values", &values}, {"opac", &opac}, {"depths", &depths}};
  const int64_t nf = (int64_t)named.size();
  at::Tensor flags = finite_flags(named, /*extra=*/1);
  if (IN > 0) flags.slice(0, nf, nf + 1).copy_(cum.slice(0, IN - 1, IN));  // else M = 0
  else flags[nf].zero_();
  const at::Tensor host = flags.cpu();
  raise_if_not_finite(kFwd, host, named);
  const int64_t M = host.data_ptr<int64_t>()[nf];
  // Headroom so the kernels' batch cursors (position + 256) cannot overflow int32.
  TORCH_CHECK(M < kInt32Max - 1024, kFwd, ": ", M,
              " (Gaussian, tile) pairs exceed the int32 range; render fewer cameras or Gaussians per call");

  // One (key, id) per intersection, sorted by (image, tile, depth).
  auto keys = at::empty({M}, opts.dtype(at::kLong));
  auto ids = at::empty({M}, opts.dtype(at::kInt));
  at::Tensor sorted_keys = keys, flat_ids = ids;
  if (M > 0) {
    cuda::emit_keys(means2d.data_ptr<float>(), radii.data_ptr<int32_t>(), depths.data_ptr<float>(),
                    cum.data_ptr<int64_t>(), I, N, w, h, ts, reinterpret_cast<uint64_t*>(keys.data_ptr<int64_t>()),
                    ids.data_ptr<int32_t>(), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    std::tie(sorted_keys, flat_ids) = sort_intersections(keys, ids, num_image_tiles, stream);
  }
  auto tile_offsets = at::empty({num_image_tiles + 1}, opts.dtype(at::kInt));
  cuda::tile_offsets(M > 0 ? reinterpret_cast<const uint64_t*>(sorted_keys.data_ptr<int64_t>()) : nullptr, (int)M,
                     num_image_tiles, tile_offsets.data_ptr<int32_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // Blending writes every pixel (empty tiles included): no memset.
  auto image = at::empty({d.B, d.C, H, W, Ch}, opts);
  auto alpha = at::empty({d.B, d.C, H, W, 1}, opts);
  auto last_ids = at::empty({d.B, d.C, H, W}, opts.dtype(at::kInt));
  auto final_T = at::empty({d.B, d.C, H, W}, opts);
  if (I > 0) {
    cuda::rasterize_forward(means2d.data_ptr<float>(), conics.data_ptr<float>(), values.data_ptr<float>(),
                            opac.data_ptr<float>(), tile_offsets.data_ptr<int32_t>(), flat_ids.data_ptr<int32_t>(), I,
                            N, Ch, w, h, ts, image.data_ptr<float>(), alpha.data_ptr<float>(),
                            last_ids.data_ptr<int32_t>(), final_T.data_ptr<float>(), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {image, alpha, tile_offsets, flat_ids, last_ids, final_T};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_backward_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& values, const at::Tensor& opac,
    const at::Tensor& radii, int64_t width, int64_t height, int64_t tile_size,
    const at::Tensor& tile_offsets,  // [B·C·TH·TW + 1] int32
    const at::Tensor& flat_ids,      // [M] int32
    const at::Tensor& last_ids,      // [B, C, H, W] int32
    const at::Tensor& final_T,       // [B, C, H, W]
    const at::Tensor& v_image,       // [B, C, H, W, Ch]
    const at::Tensor& v_alpha) {     // [B, C, H, W, 1]
  const RasterDims d = check_raster_inputs_cuda(kBwd, means2d, conics, values, opac, radii, width, height,
                                                tile_size);
  check_raster_grads(kBwd, d, means2d, tile_offsets, flat_ids, last_ids, final_T, v_image, v_alpha,
                     c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(means2d.device());
  // The kernel accumulates with atomicAdd: zero-initialised.
  auto g_means2d = at::zeros_like(means2d);
  auto g_conics = at::zeros_like(conics);
  auto g_values = at::zeros_like(values);
  auto g_opac = at::zeros_like(opac);
  if (d.I == 0 || flat_ids.numel() == 0) return {g_means2d, g_conics, g_values, g_opac};
  cuda::rasterize_backward(means2d.data_ptr<float>(), conics.data_ptr<float>(), values.data_ptr<float>(),
                           opac.data_ptr<float>(), tile_offsets.data_ptr<int32_t>(), flat_ids.data_ptr<int32_t>(),
                           last_ids.data_ptr<int32_t>(), final_T.data_ptr<float>(), v_image.data_ptr<float>(),
                           v_alpha.data_ptr<float>(), d.I, d.N, d.Ch, (int)width, (int)height, (int)tile_size,
                           g_means2d.data_ptr<float>(), g_conics.data_ptr<float>(), g_values.data_ptr<float>(),
                           g_opac.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {g_means2d, g_conics, g_values, g_opac};
}

}  // namespace splatnet

TORCH_LIBRARY_IMPL(splatnet, CUDA, m) {
  m.impl("rasterize_forward", &splatnet::rasterize_forward_cuda);
  m.impl("rasterize_backward", &splatnet::rasterize_backward_cuda);
}

#endif  // WITH_CUDA

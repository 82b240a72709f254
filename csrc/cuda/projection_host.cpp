// CUDA implementation of splatnet.project_forward / project_backward (schemas in csrc/ext.cpp):
// validates inputs (splatnet/op_checks.h, as the CPU op does), allocates outputs on the inputs'
// device and launches the kernels of projection.cu on the current stream. Compiled only in CUDA
// builds (WITH_CUDA).
#ifdef WITH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "checks_host.h"
#include "launchers.h"
#include "splatnet/op_checks.h"

namespace splatnet {
namespace {

constexpr const char* kFwd = "splatnet.project_forward (CUDA)";
constexpr const char* kBwd = "splatnet.project_backward (CUDA)";

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_forward_cuda(
    const at::Tensor& means,      // [B, N, 3]
    const at::Tensor& quats,      // [B, N, 4]
    const at::Tensor& scales,     // [B, N, 3]
    const at::Tensor& opacities,  // [B, N]
    const at::Tensor& sh,         // [B, N, K, 3]
    const at::Tensor& viewmats,   // [B, C, 4, 4]
    const at::Tensor& Ks,         // [B, C, 3, 3]
    int64_t width, int64_t height, int64_t sh_degree, double near_plane, double far_plane, bool antialiased) {
  const auto d = check_project_inputs(kFwd, means, quats, scales, opacities, sh, viewmats, Ks, width, height,
                                      sh_degree, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(means.device());
  const auto B = d.B, N = d.N, C = d.C, K = d.K;
  {
    // One device→host copy (one sync) for all the flags.
    const std::initializer_list<NamedTensor> named = {{"means", &means},         {"quats", &quats},
                                                      {"scales", &scales},       {"opacities", &opacities},
                                                      {"sh", &sh},               {"viewmats", &viewmats},
                                                      {"Ks", &Ks}};
    raise_if_not_finite(kFwd, finite_flags(named).cpu(), named);
  }
  auto opts = means.options();
  // The kernel writes every element (zeros for culled Gaussians): no memset.
  auto means2d = at::empty({B, C, N, 2}, opts);
  auto conics = at::empty({B, C, N, 3}, opts);
  auto depths = at::empty({B, C, N}, opts);
  auto radii = at::empty({B, C, N, 2}, opts.dtype(at::kInt));
  auto opac = at::empty({B, C, N}, opts);
  auto colors = at::empty({B, C, N, 3}, opts);
  if (B * C * N == 0) return {means2d, conics, depths, radii, opac, colors};
  cuda::project_forward(means.data_ptr<float>(), quats.data_ptr<float>(), scales.data_ptr<float>(),
                        opacities.data_ptr<float>(), sh.data_ptr<float>(), viewmats.data_ptr<float>(),
                        Ks.data_ptr<float>(), B, C, N, K, (int)width, (int)height, (int)sh_degree,
                        (float)near_plane, (float)far_plane, antialiased, means2d.data_ptr<float>(),
                        conics.data_ptr<float>(), depths.data_ptr<float>(), radii.data_ptr<int32_t>(),
                        opac.data_ptr<float>(), colors.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {means2d, conics, depths, radii, opac, colors};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_backward_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& sh, const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height,
    int64_t sh_degree, bool antialiased,
    const at::Tensor& radii,       // [B, C, N, 2] from the forward
    const at::Tensor& v_means2d,   // [B, C, N, 2]
    const at::Tensor& v_conics,    // [B, C, N, 3]
    const at::Tensor& v_depths,    // [B, C, N]
    const at::Tensor& v_opac,      // [B, C, N]
    const at::Tensor& v_colors) {  // [B, C, N, 3]
  const auto dev = c10::DeviceType::CUDA;
  const auto d = check_project_inputs(kBwd, means, quats, scales, opacities, sh, viewmats, Ks, width, height,
                                      sh_degree, dev);
  check_project_grads(kBwd, d, means, radii, v_means2d, v_conics, v_depths, v_opac, v_colors, dev);
  const auto B = d.B, N = d.N, C = d.C, K = d.K;
  const c10::cuda::CUDAGuard guard(means.device());
  // The kernel writes g_means .. g_opacities for every Gaussian and adds into g_sh.
  auto g_means = at::empty_like(means);
  auto g_quats = at::empty_like(quats);
  auto g_scales = at::empty_like(scales);
  auto g_opacities = at::empty_like(opacities);
  auto g_sh = at::zeros_like(sh);
  if (B * N == 0) return {g_means, g_quats, g_scales, g_opacities, g_sh};
  cuda::project_backward(means.data_ptr<float>(), quats.data_ptr<float>(), scales.data_ptr<float>(),
                         opacities.data_ptr<float>(), sh.data_ptr<float>(), viewmats.data_ptr<float>(),
                         Ks.data_ptr<float>(), B, C, N, K, (int)width, (int)height, (int)sh_degree, antialiased,
                         radii.data_ptr<int32_t>(), v_means2d.data_ptr<float>(), v_conics.data_ptr<float>(),
                         v_depths.data_ptr<float>(), v_opac.data_ptr<float>(), v_colors.data_ptr<float>(),
                         g_means.data_ptr<float>(), g_quats.data_ptr<float>(), g_scales.data_ptr<float>(),
                         g_opacities.data_ptr<float>(), g_sh.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {g_means, g_quats, g_scales, g_opacities, g_sh};
}

}  // namespace splatnet

TORCH_LIBRARY_IMPL(splatnet, CUDA, m) {
  m.impl("project_forward", &splatnet::project_forward_cuda);
  m.impl("project_backward", &splatnet::project_backward_cuda);
}

#endif  // WITH_CUDA

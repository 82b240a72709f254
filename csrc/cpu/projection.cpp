// CPU projection op: EWA projection + SH colour of B scenes × N Gaussians into B × C cameras, and
// its backward (schemas in csrc/ext.cpp). Math in splatnet/projection.h and splatnet/sh.h, input
// checks in splatnet/op_checks.h (all shared with the CUDA op); this file allocates outputs and
// runs the loops (at::parallel_for over Gaussians; each thread loops over that Gaussian's cameras,
// so the backward needs no atomics).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "splatnet/op_checks.h"
#include "splatnet/projection.h"
#include "splatnet/sh.h"

namespace splatnet {
namespace {

constexpr const char* kFwd = "splatnet.project_forward";
constexpr const char* kBwd = "splatnet.project_backward";

// Grain of the loops over Gaussians: enough work per task to amortise scheduling.
constexpr int64_t kGrain = 256;

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_forward_cpu(
    const at::Tensor& means,      // [B, N, 3]
    const at::Tensor& quats,      // [B, N, 4]
    const at::Tensor& scales,     // [B, N, 3]
    const at::Tensor& opacities,  // [B, N]
    const at::Tensor& sh,         // [B, N, K, 3]
    const at::Tensor& viewmats,   // [B, C, 4, 4]
    const at::Tensor& Ks,         // [B, C, 3, 3]
    int64_t width, int64_t height, int64_t sh_degree, double near_plane, double far_plane,
    bool antialiased) {
  const auto d = check_project_inputs(kFwd, means, quats, scales, opacities, sh, viewmats, Ks, width, height,
                                      sh_degree, c10::DeviceType::CPU);
  check_finite_cpu(means, kFwd, "means");
  check_finite_cpu(quats, kFwd, "quats");
  check_finite_cpu(scales, kFwd, "scales");
  check_finite_cpu(opacities, kFwd, "opacities");
  check_finite_cpu(sh, kFwd, "sh");
  check_finite_cpu(viewmats, kFwd, "viewmats");
  check_finite_cpu(Ks, kFwd, "Ks");
  const auto B = d.B, N = d.N, C = d.C, K = d.K;
  auto opts = means.options();
  // Uninitialised: the loop writes every element (zeros for a culled Gaussian), in one pass that
  // also touches the fresh pages on the threads that use them.
  auto means2d = at::empty({B, C, N, 2}, opts);
  auto conics = at::empty({B, C, N, 3}, opts);
  auto depths = at::empty({B, C, N}, opts);
  auto radii = at::empty({B, C, N, 2}, opts.dtype(at::kInt));
  auto opac = at::empty({B, C, N}, opts);
  auto colors = at::empty({B, C, N, 3}, opts);
  if (B * N * C == 0) return {means2d, conics, depths, radii, opac, colors};

  const float* p_means = means.data_ptr<float>();
  const float* p_quats = quats.data_ptr<float>();
  const float* p_scales = scales.data_ptr<float>();
  const float* p_opac = opacities.data_ptr<float>();
  const float* p_sh = sh.data_ptr<float>();
  const float* p_vm = viewmats.data_ptr<float>();
  const float* p_K = Ks.data_ptr<float>();
  float* o_m2d = means2d.data_ptr<float>();
  float* o_con = conics.data_ptr<float>();
  float* o_dep = depths.data_ptr<float>();
  int* o_rad = radii.data_ptr<int>();
  float* o_opac = opac.data_ptr<float>();
  float* o_col = colors.data_ptr<float>();
  const int deg = (int)sh_degree;
  const float nearf = (float)near_plane, farf = (float)far_plane;

  at::parallel_for(0, B * N, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t bn = lo; bn < hi; ++bn) {
      const int64_t b = bn / N, n = bn % N;
      const float* pm = p_means + bn * 3;
      const Vec3 p = {pm[0], pm[1], pm[2]};
      for (int64_t c = 0; c < C; ++c) {
        const int64_t bc = b * C + c;
        const Camera cam = camera_from_matrices(p_vm + bc * 16, p_K + bc * 9, (int)width, (int)height);
        const int64_t o = bc * N + n;  // [B, C, N] flat index
        Projected pr;
        bool ok = project_gaussian(cam, p, p_quats + bn * 4, p_scales + bn * 3, p_opac[bn], nearf, farf,
                                   antialiased, pr);
        o_dep[o] = pr.depth;
        if (!ok) {
          o_m2d[o * 2 + 0] = o_m2d[o * 2 + 1] = 0.f;
          o_con[o * 3 + 0] = o_con[o * 3 + 1] = o_con[o * 3 + 2] = 0.f;
          o_rad[o * 2 + 0] = o_rad[o * 2 + 1] = 0;
          o_opac[o] = 0.f;
          o_col[o * 3 + 0] = o_col[o * 3 + 1] = o_col[o * 3 + 2] = 0.f;
          continue;
        }
        o_m2d[o * 2 + 0] = pr.mx;
        o_m2d[o * 2 + 1] = pr.my;
        o_con[o * 3 + 0] = pr.a;
        o_con[o * 3 + 1] = pr.b;
        o_con[o * 3 + 2] = pr.c;
        o_rad[o * 2 + 0] = pr.rx;
        o_rad[o * 2 + 1] = pr.ry;
        o_opac[o] = pr.opac;
        const Vec3 cc = camera_center(cam);
        sh_to_color(deg, p_sh + bn * K * 3, {p.x - cc.x, p.y - cc.y, p.z - cc.z}, o_col + o * 3);
      }
    }
  });
  return {means2d, conics, depths, radii, opac, colors};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_backward_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& sh, const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height,
    int64_t sh_degree, bool antialiased,
    const at::Tensor& radii,      // [B, C, N, 2] from the forward
    const at::Tensor& v_means2d,  // [B, C, N, 2]
    const at::Tensor& v_conics,   // [B, C, N, 3]
    const at::Tensor& v_depths,   // [B, C, N]
    const at::Tensor& v_opac,     // [B, C, N]
    const at::Tensor& v_colors) {  // [B, C, N, 3]
  const auto cpu = c10::DeviceType::CPU;
  const auto d = check_project_inputs(kBwd, means, quats, scales, opacities, sh, viewmats, Ks, width, height,
                                      sh_degree, cpu);
  check_project_grads(kBwd, d, means, radii, v_means2d, v_conics, v_depths, v_opac, v_colors, cpu);
  const auto B = d.B, N = d.N, C = d.C, K = d.K;
  // Uninitialised: the loop writes every element (each Gaussian's SH gradient zeroed before its
  // cameras add to it), in one pass.
  auto g_means = at::empty_like(means);
  auto g_quats = at::empty_like(quats);
  auto g_scales = at::empty_like(scales);
  auto g_opacities = at::empty_like(opacities);
  auto g_sh = at::empty_like(sh);
  if (B * N * C == 0) {
    return {g_means.zero_(), g_quats.zero_(), g_scales.zero_(), g_opacities.zero_(), g_sh.zero_()};
  }

  const float* p_means = means.data_ptr<float>();
  const float* p_quats = quats.data_ptr<float>();
  const float* p_scales = scales.data_ptr<float>();
  const float* p_opac = opacities.data_ptr<float>();
  const float* p_sh = sh.data_ptr<float>();
  const float* p_vm = viewmats.data_ptr<float>();
  const float* p_K = Ks.data_ptr<float>();
  const int* p_rad = radii.data_ptr<int>();
  const float* v_m2d = v_means2d.data_ptr<float>();
  const float* v_con = v_conics.data_ptr<float>();
  const float* v_dep = v_depths.data_ptr<float>();
  const float* v_op = v_opac.data_ptr<float>();
  const float* v_col = v_colors.data_ptr<float>();
  float* g_m = g_means.data_ptr<float>();
  float* g_q = g_quats.data_ptr<float>();
  float* g_s = g_scales.data_ptr<float>();
  float* g_o = g_opacities.data_ptr<float>();
  float* g_sh_p = g_sh.data_ptr<float>();
  const int deg = (int)sh_degree;

  at::parallel_for(0, B * N, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t bn = lo; bn < hi; ++bn) {
      const int64_t b = bn / N, n = bn % N;
      const float* pm = p_means + bn * 3;
      const Vec3 p = {pm[0], pm[1], pm[2]};
      Vec3 vp = {0.f, 0.f, 0.f};
      float vq[4] = {0.f, 0.f, 0.f, 0.f}, vs[3] = {0.f, 0.f, 0.f}, vo = 0.f;
      std::fill(g_sh_p + bn * K * 3, g_sh_p + (bn + 1) * K * 3, 0.f);
      for (int64_t c = 0; c < C; ++c) {
        const int64_t bc = b * C + c;
        const Camera cam = camera_from_matrices(p_vm + bc * 16, p_K + bc * 9, (int)width, (int)height);
        const int64_t o = bc * N + n;
        // depth = camera z is defined for every Gaussian, culled or not.
        const float vd = v_dep[o];
        vp.x += cam.R[6] * vd;
        vp.y += cam.R[7] * vd;
        vp.z += cam.R[8] * vd;
        if (p_rad[o * 2] <= 0 || p_rad[o * 2 + 1] <= 0) continue;  // culled: no other output depends on it
        project_gaussian_vjp(cam, p, p_quats + bn * 4, p_scales + bn * 3, p_opac[bn], antialiased,
                             v_m2d[o * 2], v_m2d[o * 2 + 1], v_con[o * 3], v_con[o * 3 + 1], v_con[o * 3 + 2],
                             0.f, v_op[o], vp, vq, vs, vo);
        const Vec3 cc = camera_center(cam);
        const Vec3 vdir = sh_to_color_vjp(deg, p_sh + bn * K * 3, {p.x - cc.x, p.y - cc.y, p.z - cc.z},
                                          v_col + o * 3, g_sh_p + bn * K * 3);
        vp.x += vdir.x;
        vp.y += vdir.y;
        vp.z += vdir.z;
      }
      g_m[bn * 3 + 0] = vp.x;
      g_m[bn * 3 + 1] = vp.y;
      g_m[bn * 3 + 2] = vp.z;
      for (int i = 0; i < 4; ++i) g_q[bn * 4 + i] = vq[i];
      for (int i = 0; i < 3; ++i) g_s[bn * 3 + i] = vs[i];
      g_o[bn] = vo;
    }
  });
  return {g_means, g_quats, g_scales, g_opacities, g_sh};
}

}  // namespace splatnet

TORCH_LIBRARY_IMPL(splatnet, CPU, m) {
  m.impl("project_forward", &splatnet::project_forward_cpu);
  m.impl("project_backward", &splatnet::project_backward_cpu);
}

// CUDA projection + SH colour, forward and backward. All the math is the shared SPLATNET_HD code of
// splatnet/projection.h and splatnet/sh.h (the CPU op in csrc/cpu/projection.cpp runs the same
// functions); this file only maps threads to (scene, camera, Gaussian) and moves memory.
#include <cuda_runtime.h>

#include <cstdint>

#include "launchers.h"
#include "splatnet/constants.h"
#include "splatnet/projection.h"
#include "splatnet/sh.h"

namespace splatnet {
namespace cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned int num_blocks(int64_t n) { return (unsigned int)((n + kThreads - 1) / kThreads); }

// One thread per output element o = (b·C + c)·N + n.
__global__ void project_forward_kernel(const float* __restrict__ means, const float* __restrict__ quats,
                                       const float* __restrict__ scales, const float* __restrict__ opacities,
                                       const float* __restrict__ sh, const float* __restrict__ viewmats,
                                       const float* __restrict__ Ks, int64_t B, int64_t C, int64_t N,
                                       int64_t K, int width, int height, int sh_degree, float near_plane,
                                       float far_plane, bool antialiased, float* __restrict__ means2d,
                                       float* __restrict__ conics, float* __restrict__ depths,
                                       int32_t* __restrict__ radii, float* __restrict__ opac,
                                       float* __restrict__ colors) {
  const int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= B * C * N) return;
  const int64_t n = o % N, bc = o / N, b = bc / C, bn = b * N + n;
  const Camera cam = camera_from_matrices(viewmats + bc * 16, Ks + bc * 9, width, height);
  const Vec3 p = {means[bn * 3 + 0], means[bn * 3 + 1], means[bn * 3 + 2]};
  Projected pr;
  const bool ok = project_gaussian(cam, p, quats + bn * 4, scales + bn * 3, opacities[bn], near_plane,
                                   far_plane, antialiased, pr);
  // A culled Gaussian has pr zeroed except its depth: write everything so outputs need no memset.
  means2d[o * 2 + 0] = pr.mx;
  means2d[o * 2 + 1] = pr.my;
  conics[o * 3 + 0] = pr.a;
  conics[o * 3 + 1] = pr.b;
  conics[o * 3 + 2] = pr.c;
  depths[o] = pr.depth;
  radii[o * 2 + 0] = pr.rx;
  radii[o * 2 + 1] = pr.ry;
  opac[o] = pr.opac;
  float rgb[3] = {0.f, 0.f, 0.f};
  if (ok) {
    const Vec3 cc = camera_center(cam);
    sh_to_color(sh_degree, sh + bn * K * 3, {p.x - cc.x, p.y - cc.y, p.z - cc.z}, rgb);
  }
  colors[o * 3 + 0] = rgb[0];
  colors[o * 3 + 1] = rgb[1];
  colors[o * 3 + 2] = rgb[2];
}

// One thread per (scene, Gaussian) bn = b·N + n, looping over the scene's cameras: the per-Gaussian
// gradients are summed in registers (and g_sh by this thread alone), so no atomics and the result
// is deterministic. Same loop as the CPU op.
__global__ void project_backward_kernel(
    const float* __restrict__ means, const float* __restrict__ quats, const float* __restrict__ scales,
    const float* __restrict__ opacities, const float* __restrict__ sh, const float* __restrict__ viewmats,
    const float* __restrict__ Ks, int64_t B, int64_t C, int64_t N, int64_t K, int width, int height,
    int sh_degree, bool antialiased, const int32_t* __restrict__ radii, const float* __restrict__ v_means2d,
    const float* __restrict__ v_conics, const float* __restrict__ v_depths, const float* __restrict__ v_opac,
    const float* __restrict__ v_colors, float* __restrict__ g_means, float* __restrict__ g_quats,
    float* __restrict__ g_scales, float* __restrict__ g_opacities, float* __restrict__ g_sh) {
  const int64_t bn = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (bn >= B * N) return;
  const int64_t b = bn / N, n = bn % N;
  const Vec3 p = {means[bn * 3 + 0], means[bn * 3 + 1], means[bn * 3 + 2]};
  const float* q = quats + bn * 4;
  const float* s = scales + bn * 3;
  const float* shc = sh + bn * K * 3;
  float* g_shc = g_sh + bn * K * 3;
  Vec3 vp = {0.f, 0.f, 0.f};
  float vq[4] = {0.f, 0.f, 0.f, 0.f}, vs[3] = {0.f, 0.f, 0.f}, vo = 0.f;
  for (int64_t c = 0; c < C; ++c) {
    const int64_t bc = b * C + c;
    const Camera cam = camera_from_matrices(viewmats + bc * 16, Ks + bc * 9, width, height);
    const int64_t o = bc * N + n;
    // depth = camera z is an output for every Gaussian, culled or not.
    const float vd = v_depths[o];
    vp.x += cam.R[6] * vd;
    vp.y += cam.R[7] * vd;
    vp.z += cam.R[8] * vd;
    if (radii[o * 2] <= 0 || radii[o * 2 + 1] <= 0) continue;  // culled: nothing else depends on it
    project_gaussian_vjp(cam, p, q, s, opacities[bn], antialiased, v_means2d[o * 2], v_means2d[o * 2 + 1],
                         v_conics[o * 3], v_conics[o * 3 + 1], v_conics[o * 3 + 2], 0.f, v_opac[o], vp, vq, vs,
                         vo);
    const Vec3 cc = camera_center(cam);
    const Vec3 vdir = sh_to_color_vjp(sh_degree, shc, {p.x - cc.x, p.y - cc.y, p.z - cc.z}, v_colors + o * 3,
                                      g_shc);
    vp.x += vdir.x;
    vp.y += vdir.y;
    vp.z += vdir.z;
  }
  g_means[bn * 3 + 0] = vp.x;
  g_means[bn * 3 + 1] = vp.y;
  g_means[bn * 3 + 2] = vp.z;
  for (int i = 0; i < 4; ++i) g_quats[bn * 4 + i] = vq[i];
  for (int i = 0; i < 3; ++i) g_scales[bn * 3 + i] = vs[i];
  g_opacities[bn] = vo;
}

}  // namespace

void project_forward(const float* means, const float* quats, const float* scales, const float* opacities,
                     const float* sh, const float* viewmats, const float* Ks, int64_t B, int64_t C, int64_t N,
                     int64_t K, int width, int height, int sh_degree, float near_plane, float far_plane,
                     bool antialiased, float* means2d, float* conics, float* depths, int32_t* radii, float* opac,
                     float* colors, cudaStream_t stream) {
  const int64_t n = B * C * N;
  if (n == 0) return;
  project_forward_kernel<<<num_blocks(n), kThreads, 0, stream>>>(
      means, quats, scales, opacities, sh, viewmats, Ks, B, C, N, K, width, height, sh_degree, near_plane,
      far_plane, antialiased, means2d, conics, depths, radii, opac, colors);
}

void project_backward(const float* means, const float* quats, const float* scales, const float* opacities,
                      const float* sh, const float* viewmats, const float* Ks, int64_t B, int64_t C, int64_t N,
                      int64_t K, int width, int height, int sh_degree, bool antialiased, const int32_t* radii,
                      const float* v_means2d, const float* v_conics, const float* v_depths, const float* v_opac,
                      const float* v_colors, float* g_means, float* g_quats, float* g_scales,
                      float* g_opacities, float* g_sh, cudaStream_t stream) {
  const int64_t n = B * N;
  if (n == 0) return;
  project_backward_kernel<<<num_blocks(n), kThreads, 0, stream>>>(
      means, quats, scales, opacities, sh, viewmats, Ks, B, C, N, K, width, height, sh_degree, antialiased,
      radii, v_means2d, v_conics, v_depths, v_opac, v_colors, g_means, g_quats, g_scales, g_opacities, g_sh);
}

}  // namespace cuda
}  // namespace splatnet

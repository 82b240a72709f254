// Real spherical harmonics of degree 0-3 (3DGS / gsplat order and signs; splatnet/sh.py is the
// pure-torch twin) and their VJP. Shared by the CPU and CUDA kernels.
#pragma once

#include <math.h>

#include "splatnet/constants.h"
#include "splatnet/projection.h"

namespace splatnet {

SPLATNET_HD inline int sh_num_bases(int degree) { return (degree + 1) * (degree + 1); }

// Basis Y_k(d) for a unit direction d; writes (degree+1)² values.
SPLATNET_HD inline void sh_basis(int degree, float x, float y, float z, float* Y) {
  Y[0] = kSH_C0;
  if (degree < 1) return;
  Y[1] = -kSH_C1 * y;
  Y[2] = kSH_C1 * z;
  Y[3] = -kSH_C1 * x;
  if (degree < 2) return;
  float xx = x * x, yy = y * y, zz = z * z;
  Y[4] = kSH_C2_0 * x * y;
  Y[5] = kSH_C2_1 * y * z;
  Y[6] = kSH_C2_2 * (2.f * zz - xx - yy);
  Y[7] = kSH_C2_3 * x * z;
  Y[8] = kSH_C2_4 * (xx - yy);
  if (degree < 3) return;
  Y[9] = kSH_C3_0 * y * (3.f * xx - yy);
  Y[10] = kSH_C3_1 * x * y * z;
  Y[11] = kSH_C3_2 * y * (4.f * zz - xx - yy);
  Y[12] = kSH_C3_3 * z * (2.f * zz - 3.f * xx - 3.f * yy);
  Y[13] = kSH_C3_4 * x * (4.f * zz - xx - yy);
  Y[14] = kSH_C3_5 * z * (xx - yy);
  Y[15] = kSH_C3_6 * x * (xx - 3.f * yy);
}

// Given g_k = dL/dY_k, returns dL/d(unit direction) (x, y, z).
SPLATNET_HD inline Vec3 sh_basis_vjp(int degree, float x, float y, float z, const float* g) {
  Vec3 v = {0.f, 0.f, 0.f};
  if (degree < 1) return v;
  v.y += -kSH_C1 * g[1];
  v.z += kSH_C1 * g[2];
  v.x += -kSH_C1 * g[3];
  if (degree < 2) return v;
  float xx = x * x, yy = y * y, zz = z * z;
  v.x += kSH_C2_0 * y * g[4];
  v.y += kSH_C2_0 * x * g[4];
  v.y += kSH_C2_1 * z * g[5];
  v.z += kSH_C2_1 * y * g[5];
  v.x += -2.f * kSH_C2_2 * x * g[6];
  v.y += -2.f * kSH_C2_2 * y * g[6];
  v.z += 4.f * kSH_C2_2 * z * g[6];
  v.x += kSH_C2_3 * z * g[7];
  v.z += kSH_C2_3 * x * g[7];
  v.x += 2.f * kSH_C2_4 * x * g[8];
  v.y += -2.f * kSH_C2_4 * y * g[8];
  if (degree < 3) return v;
  v.x += 6.f * kSH_C3_0 * x * y * g[9];
  v.y += kSH_C3_0 * (3.f * xx - 3.f * yy) * g[9];
  v.x += kSH_C3_1 * y * z * g[10];
  v.y += kSH_C3_1 * x * z * g[10];
  v.z += kSH_C3_1 * x * y * g[10];
  v.x += -2.f * kSH_C3_2 * x * y * g[11];
  v.y += kSH_C3_2 * (4.f * zz - xx - 3.f * yy) * g[11];
  v.z += 8.f * kSH_C3_2 * y * z * g[11];
  v.x += -6.f * kSH_C3_3 * x * z * g[12];
  v.y += -6.f * kSH_C3_3 * y * z * g[12];
  v.z += kSH_C3_3 * (6.f * zz - 3.f * xx - 3.f * yy) * g[12];
  v.x += kSH_C3_4 * (4.f * zz - 3.f * xx - yy) * g[13];
  v.y += -2.f * kSH_C3_4 * x * y * g[13];
  v.z += 8.f * kSH_C3_4 * x * z * g[13];
  v.x += 2.f * kSH_C3_5 * x * z * g[14];
  v.y += -2.f * kSH_C3_5 * y * z * g[14];
  v.z += kSH_C3_5 * (xx - yy) * g[14];
  v.x += kSH_C3_6 * (3.f * xx - 3.f * yy) * g[15];
  v.y += -6.f * kSH_C3_6 * x * y * g[15];
  return v;
}

// Colour of a Gaussian with coefficients sh[k*3 + ch] (k < (degree+1)², the rows used) seen along
// the (unnormalised) direction dir (camera centre → mean):
// rgb = max(0, kSHColorOffset + Σ_k Y_k(d̂) sh[k]).
SPLATNET_HD inline void sh_to_color(int degree, const float* sh, Vec3 dir, float rgb[3]) {
  float n = sqrtf(dir.x * dir.x + dir.y * dir.y + dir.z * dir.z);
  float inv = 1.f / (n > kDirNormMin ? n : kDirNormMin);
  float Y[16];
  sh_basis(degree, dir.x * inv, dir.y * inv, dir.z * inv, Y);
  int K = sh_num_bases(degree);
  for (int ch = 0; ch < 3; ++ch) {
    float acc = kSHColorOffset;
    for (int k = 0; k < K; ++k) acc += Y[k] * sh[k * 3 + ch];
    rgb[ch] = acc > 0.f ? acc : 0.f;
  }
}

// Backward of sh_to_color: adds dL/dsh to v_sh[k*3 + ch] and returns dL/d(unnormalised dir).
SPLATNET_HD inline Vec3 sh_to_color_vjp(int degree, const float* sh, Vec3 dir, const float v_rgb[3],
                                        float* v_sh) {
  float n = sqrtf(dir.x * dir.x + dir.y * dir.y + dir.z * dir.z);
  float nn = n > kDirNormMin ? n : kDirNormMin;
  float inv = 1.f / nn;
  float x = dir.x * inv, y = dir.y * inv, z = dir.z * inv;
  float Y[16];
  sh_basis(degree, x, y, z, Y);
  int K = sh_num_bases(degree);
  float v_raw[3];
  for (int ch = 0; ch < 3; ++ch) {
    float acc = kSHColorOffset;
    for (int k = 0; k < K; ++k) acc += Y[k] * sh[k * 3 + ch];
    v_raw[ch] = acc >= 0.f ? v_rgb[ch] : 0.f;  // torch.clamp_min passes the gradient at the bound
  }
  float g[16];
  for (int k = 0; k < K; ++k) {
    g[k] = 0.f;
    for (int ch = 0; ch < 3; ++ch) {
      v_sh[k * 3 + ch] += Y[k] * v_raw[ch];
      g[k] += sh[k * 3 + ch] * v_raw[ch];
    }
  }
  Vec3 vd = sh_basis_vjp(degree, x, y, z, g);
  if (!(n > kDirNormMin)) return {0.f, 0.f, 0.f};  // length clamped: no gradient to dir
  // d̂ = d/|d|: v_d = (v_d̂ − d̂ (d̂·v_d̂)) / |d|.
  float dot = x * vd.x + y * vd.y + z * vd.z;
  return {(vd.x - x * dot) * inv, (vd.y - y * dot) * inv, (vd.z - z * dot) * inv};
}

}  // namespace splatnet

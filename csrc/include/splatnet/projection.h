// EWA projection of one 3D Gaussian into one pinhole camera, and its hand-derived backward (VJP).
// Shared by the C++ CPU kernels and the CUDA kernels (SPLATNET_HD): plain floats and structs only.
//
// Forward chain (docs/conventions.md "Rendering"):
//   q̂ = q/|q|, R_g = rot(q̂), M = R_g diag(s), Σ = M Mᵀ                      (world covariance)
//   p_c = R p + t, Σ_c = R Σ Rᵀ                                               (viewmat = [R t])
//   J = [[fx/z, 0, −fx·ū/z], [0, fy/z, −fy·v̄/z]], ū, v̄ = x/z, y/z clamped (kFovClamp)
//   Σ₂ = J Σ_c Jᵀ, Σ' = Σ₂ + kDilation·I, conic = Σ'⁻¹ as (a, b, c) = upper triangle
//   compensation = sqrt(max(0, det Σ₂ / det Σ')) (antialiased mode only)
//   mean2d = (fx·x/z + cx, fy·y/z + cy)
// Each *_vjp function takes the gradient of the outputs and returns (adds, where said) the gradient
// of the inputs, as torch autograd of the same formula would.
#pragma once

#include <math.h>

#include "splatnet/constants.h"

namespace splatnet {

struct Vec3 {
  float x, y, z;
};

// Row-major 3×3 matrix.
struct Mat3 {
  float m[3][3];
};

// Symmetric 2×2 matrix [[xx, xy], [xy, yy]].
struct Sym2 {
  float xx, xy, yy;
};

// Pinhole camera: world→camera rotation R (row-major) and translation t, intrinsics in pixels.
struct Camera {
  float R[9];
  float t[3];
  float fx, fy, cx, cy;
  int width, height;
};

// Camera from a row-major world→camera matrix [4, 4] (OpenCV) and row-major intrinsics [3, 3]: the
// layout of the ops' `viewmats` and `Ks` entries.
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

SPLATNET_HD inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// ---------------------------------------------------------------------------------------------
// Quaternion (w, x, y, z; need not be unit) → rotation matrix.
SPLATNET_HD inline Mat3 quat_to_rotmat(const float q[4]) {
  float n = sqrtf(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  float inv = n > 0.f ? 1.f / n : 0.f;
  float w = q[0] * inv, x = q[1] * inv, y = q[2] * inv, z = q[3] * inv;
  Mat3 R;
  R.m[0][0] = 1.f - 2.f * (y * y + z * z);
  R.m[0][1] = 2.f * (x * y - w * z);
  R.m[0][2] = 2.f * (x * z + w * y);
  R.m[1][0] = 2.f * (x * y + w * z);
  R.m[1][1] = 1.f - 2.f * (x * x + z * z);
  R.m[1][2] = 2.f * (y * z - w * x);
  R.m[2][0] = 2.f * (x * z - w * y);
  R.m[2][1] = 2.f * (y * z + w * x);
  R.m[2][2] = 1.f - 2.f * (x * x + y * y);
  return R;
}

// Gradient of quat_to_rotmat w.r.t. the unnormalised quaternion, given v_R = dL/dR. Writes v_q.
SPLATNET_HD inline void quat_to_rotmat_vjp(const float q[4], const Mat3& v_R, float v_q[4]) {
  float n = sqrtf(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  float inv = n > 0.f ? 1.f / n : 0.f;
  float w = q[0] * inv, x = q[1] * inv, y = q[2] * inv, z = q[3] * inv;
  const float(*V)[3] = v_R.m;
  float gw = 2.f * (-z * V[0][1] + y * V[0][2] + z * V[1][0] - x * V[1][2] - y * V[2][0] + x * V[2][1]);
  float gx = 2.f * (y * V[0][1] + z * V[0][2] + y * V[1][0] - 2.f * x * V[1][1] - w * V[1][2] +
                    z * V[2][0] + w * V[2][1] - 2.f * x * V[2][2]);
  float gy = 2.f * (-2.f * y * V[0][0] + x * V[0][1] + w * V[0][2] + x * V[1][0] + z * V[1][2] -
                    w * V[2][0] + z * V[2][1] - 2.f * y * V[2][2]);
  float gz = 2.f * (-2.f * z * V[0][0] - w * V[0][1] + x * V[0][2] + w * V[1][0] - 2.f * z * V[1][1] +
                    y * V[1][2] + x * V[2][0] + y * V[2][1]);
  // Through the normalisation q̂ = q/|q|: v_q = (v_q̂ − q̂ (q̂·v_q̂)) / |q|.
  float d = w * gw + x * gx + y * gy + z * gz;
  v_q[0] = (gw - w * d) * inv;
  v_q[1] = (gx - x * d) * inv;
  v_q[2] = (gy - y * d) * inv;
  v_q[3] = (gz - z * d) * inv;
}

// World covariance Σ = R_g diag(s)² R_gᵀ.
SPLATNET_HD inline Mat3 quat_scale_to_covar(const float q[4], const float s[3]) {
  Mat3 R = quat_to_rotmat(q);
  Mat3 S;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      float acc = 0.f;
      for (int k = 0; k < 3; ++k) acc += R.m[i][k] * s[k] * s[k] * R.m[j][k];
      S.m[i][j] = acc;
    }
  return S;
}

// v_cov: gradient w.r.t. all nine entries of Σ (need not be symmetric). Writes v_q, v_s.
SPLATNET_HD inline void quat_scale_to_covar_vjp(const float q[4], const float s[3], const Mat3& v_cov,
                                                float v_q[4], float v_s[3]) {
  Mat3 R = quat_to_rotmat(q);
  // M = R diag(s); Σ = M Mᵀ → v_M = (V + Vᵀ) M.
  Mat3 v_R;
  for (int k = 0; k < 3; ++k) v_s[k] = 0.f;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) {
      float vm = 0.f;
      for (int j = 0; j < 3; ++j) vm += (v_cov.m[i][j] + v_cov.m[j][i]) * R.m[j][k] * s[k];
      v_R.m[i][k] = vm * s[k];
      v_s[k] += vm * R.m[i][k];
    }
  quat_to_rotmat_vjp(q, v_R, v_q);
}

// ---------------------------------------------------------------------------------------------
// World → camera.
SPLATNET_HD inline Vec3 world_to_cam_point(const Camera& cam, Vec3 p) {
  const float* R = cam.R;
  return {R[0] * p.x + R[1] * p.y + R[2] * p.z + cam.t[0], R[3] * p.x + R[4] * p.y + R[5] * p.z + cam.t[1],
          R[6] * p.x + R[7] * p.y + R[8] * p.z + cam.t[2]};
}

// v_p = Rᵀ v_pc.
SPLATNET_HD inline Vec3 world_to_cam_point_vjp(const Camera& cam, Vec3 v) {
  const float* R = cam.R;
  return {R[0] * v.x + R[3] * v.y + R[6] * v.z, R[1] * v.x + R[4] * v.y + R[7] * v.z,
          R[2] * v.x + R[5] * v.y + R[8] * v.z};
}

// Σ_c = R Σ Rᵀ.
SPLATNET_HD inline Mat3 world_to_cam_covar(const Camera& cam, const Mat3& S) {
  const float* R = cam.R;
  Mat3 T, out;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      T.m[i][j] = R[3 * i + 0] * S.m[0][j] + R[3 * i + 1] * S.m[1][j] + R[3 * i + 2] * S.m[2][j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      out.m[i][j] = T.m[i][0] * R[3 * j + 0] + T.m[i][1] * R[3 * j + 1] + T.m[i][2] * R[3 * j + 2];
  return out;
}

// v_Σ = Rᵀ v_Σc R.
SPLATNET_HD inline Mat3 world_to_cam_covar_vjp(const Camera& cam, const Mat3& V) {
  const float* R = cam.R;
  Mat3 T, out;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      T.m[i][j] = R[0 + i] * V.m[0][j] + R[3 + i] * V.m[1][j] + R[6 + i] * V.m[2][j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      out.m[i][j] = T.m[i][0] * R[0 + j] + T.m[i][1] * R[3 + j] + T.m[i][2] * R[6 + j];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pinhole projection of the mean (unclamped) and its VJP (adds to v_pc).
SPLATNET_HD inline void project_mean(const Camera& cam, Vec3 pc, float& mx, float& my) {
  float iz = 1.f / pc.z;
  mx = cam.fx * pc.x * iz + cam.cx;
  my = cam.fy * pc.y * iz + cam.cy;
}

SPLATNET_HD inline void project_mean_vjp(const Camera& cam, Vec3 pc, float v_mx, float v_my, Vec3& v_pc) {
  float iz = 1.f / pc.z;
  v_pc.x += cam.fx * iz * v_mx;
  v_pc.y += cam.fy * iz * v_my;
  v_pc.z += -(cam.fx * pc.x * v_mx + cam.fy * pc.y * v_my) * iz * iz;
}

// Clamp limits of x/z and y/z (see kFovClamp).
SPLATNET_HD inline void fov_limits(const Camera& cam, float& lx_neg, float& lx_pos, float& ly_neg,
                                   float& ly_pos) {
  float mx = (kFovClamp - 1.f) * 0.5f * (float)cam.width / cam.fx;
  float my = (kFovClamp - 1.f) * 0.5f * (float)cam.height / cam.fy;
  lx_pos = ((float)cam.width - cam.cx) / cam.fx + mx;
  lx_neg = cam.cx / cam.fx + mx;
  ly_pos = ((float)cam.height - cam.cy) / cam.fy + my;
  ly_neg = cam.cy / cam.fy + my;
}

// EWA Jacobian J (2×3, row-major in J[6]) at camera point pc, with x/z, y/z clamped.
SPLATNET_HD inline void persp_jacobian(const Camera& cam, Vec3 pc, float J[6]) {
  float lxn, lxp, lyn, lyp;
  fov_limits(cam, lxn, lxp, lyn, lyp);
  float iz = 1.f / pc.z;
  float u = clampf(pc.x * iz, -lxn, lxp);
  float v = clampf(pc.y * iz, -lyn, lyp);
  J[0] = cam.fx * iz;
  J[1] = 0.f;
  J[2] = -cam.fx * u * iz;
  J[3] = 0.f;
  J[4] = cam.fy * iz;
  J[5] = -cam.fy * v * iz;
}

// Adds dL/dpc given dL/dJ (v_J[6]); the clamp passes no gradient to x (or y) where it is active.
SPLATNET_HD inline void persp_jacobian_vjp(const Camera& cam, Vec3 pc, const float v_J[6], Vec3& v_pc) {
  float lxn, lxp, lyn, lyp;
  fov_limits(cam, lxn, lxp, lyn, lyp);
  float iz = 1.f / pc.z, iz2 = iz * iz;
  float ur = pc.x * iz, vr = pc.y * iz;
  float u = clampf(ur, -lxn, lxp);
  float v = clampf(vr, -lyn, lyp);
  bool ux = (ur >= -lxn) && (ur <= lxp);  // torch.clamp passes the gradient at the bounds
  bool vy = (vr >= -lyn) && (vr <= lyp);
  v_pc.z += -cam.fx * iz2 * v_J[0] - cam.fy * iz2 * v_J[4];
  // J02 = −fx·u/z: unclamped u = x/z → −fx·x/z²; clamped → −fx·lim/z.
  if (ux) {
    v_pc.x += -cam.fx * iz2 * v_J[2];
    v_pc.z += 2.f * cam.fx * pc.x * iz2 * iz * v_J[2];
  } else {
    v_pc.z += cam.fx * u * iz2 * v_J[2];
  }
  if (vy) {
    v_pc.y += -cam.fy * iz2 * v_J[5];
    v_pc.z += 2.f * cam.fy * pc.y * iz2 * iz * v_J[5];
  } else {
    v_pc.z += cam.fy * v * iz2 * v_J[5];
  }
}

// Σ₂ = J Σ_c Jᵀ.
SPLATNET_HD inline Sym2 project_covar(const float J[6], const Mat3& S) {
  float JS[2][3];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      JS[i][j] = J[3 * i + 0] * S.m[0][j] + J[3 * i + 1] * S.m[1][j] + J[3 * i + 2] * S.m[2][j];
  Sym2 out;
  out.xx = JS[0][0] * J[0] + JS[0][1] * J[1] + JS[0][2] * J[2];
  out.xy = JS[0][0] * J[3] + JS[0][1] * J[4] + JS[0][2] * J[5];
  out.yy = JS[1][0] * J[3] + JS[1][1] * J[4] + JS[1][2] * J[5];
  return out;
}

// Given dL/d(xx, xy, yy) (xy: the single off-diagonal parameter), writes v_S (3×3) and v_J.
SPLATNET_HD inline void project_covar_vjp(const float J[6], const Mat3& S, Sym2 v, Mat3& v_S, float v_J[6]) {
  // Full-matrix gradient G of the symmetric 2×2 output.
  float G[2][2] = {{v.xx, 0.5f * v.xy}, {0.5f * v.xy, v.yy}};
  // v_S = Jᵀ G J.
  float GJ[2][3];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) GJ[i][j] = G[i][0] * J[j] + G[i][1] * J[3 + j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) v_S.m[i][j] = J[i] * GJ[0][j] + J[3 + i] * GJ[1][j];
  // v_J = G J Sᵀ + Gᵀ J S = 2 G J S (S, G symmetric).
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      v_J[3 * i + j] = 2.f * (GJ[i][0] * S.m[0][j] + GJ[i][1] * S.m[1][j] + GJ[i][2] * S.m[2][j]);
}

// ---------------------------------------------------------------------------------------------
// Dilation, conic and antialiasing compensation. Returns false when Σ' is not positive definite.
// conic = (a, b, c) with Σ'⁻¹ = [[a, b], [b, c]]; comp = sqrt(max(0, det Σ₂ / det Σ')).
SPLATNET_HD inline bool dilate_invert(Sym2 cov, Sym2& conic, float& comp) {
  float det_orig = cov.xx * cov.yy - cov.xy * cov.xy;
  float sxx = cov.xx + kDilation, syy = cov.yy + kDilation;
  float det = sxx * syy - cov.xy * cov.xy;
  if (!(det > 0.f)) {
    conic = {0.f, 0.f, 0.f};
    comp = 0.f;
    return false;
  }
  float id = 1.f / det;
  conic = {syy * id, -cov.xy * id, sxx * id};
  float r = det_orig * id;
  comp = r > 0.f ? sqrtf(r) : 0.f;
  return true;
}

// Gradient w.r.t. the undilated Σ₂ given dL/dconic (v_conic, as (a, b, c)) and dL/dcomp.
SPLATNET_HD inline Sym2 dilate_invert_vjp(Sym2 cov, Sym2 v_conic, float v_comp) {
  float sxx = cov.xx + kDilation, syy = cov.yy + kDilation, sxy = cov.xy;
  float det = sxx * syy - sxy * sxy;
  float id = 1.f / det, id2 = id * id;
  float va = v_conic.xx, vb = v_conic.xy, vc = v_conic.yy;
  // a = syy/det, b = −sxy/det, c = sxx/det; ∂det = (syy, −2 sxy, sxx) w.r.t. (sxx, sxy, syy).
  Sym2 g;
  g.xx = va * (-syy * syy * id2) + vb * (sxy * syy * id2) + vc * (id - sxx * syy * id2);
  g.yy = va * (id - syy * sxx * id2) + vb * (sxy * sxx * id2) + vc * (-sxx * sxx * id2);
  g.xy = va * (2.f * sxy * syy * id2) + vb * (-id - 2.f * sxy * sxy * id2) + vc * (2.f * sxy * sxx * id2);
  float det_orig = cov.xx * cov.yy - cov.xy * cov.xy;
  float r = det_orig * id;
  if (r > 0.f && v_comp != 0.f) {
    float comp = sqrtf(r);
    // comp = sqrt(det_orig/det): ∂/∂det_orig = 1/(2 comp det), ∂/∂det = −comp/(2 det).
    float v_do = v_comp * 0.5f / comp * id;
    float v_d = -v_comp * 0.5f * comp * id;
    g.xx += v_do * cov.yy + v_d * syy;
    g.yy += v_do * cov.xx + v_d * sxx;
    g.xy += -2.f * sxy * (v_do + v_d);
  }
  return g;
}

// Half sides of the screen bounding box of {α ≥ kAlphaThreshold} (see constants.h, "Screen extent"). Returns
// false when the Gaussian can never be blended (opac < kAlphaThreshold).
SPLATNET_HD inline bool screen_extent(Sym2 cov, float opac, float& rx, float& ry) {
  float lr = logf(opac / kAlphaThreshold);
  if (!(lr > 0.f)) {
    rx = ry = 0.f;
    return false;
  }
  float k = sqrtf(2.f * lr);  // ≤ sqrt(2 ln 255) ≈ 3.33 (gsplat's constant) for opac ≤ 1
  rx = ceilf(k * sqrtf(cov.xx + kDilation));
  ry = ceilf(k * sqrtf(cov.yy + kDilation));
  // Far beyond any image; keeps the int conversion of the kernels defined.
  rx = rx < 1e9f ? rx : 1e9f;
  ry = ry < 1e9f ? ry : 1e9f;
  return rx > 0.f && ry > 0.f;
}

// ---------------------------------------------------------------------------------------------
// The fused per-(Gaussian, camera) projection used by the kernels (SH colour is separate: sh.h).
struct Projected {
  float mx, my;        // mean in pixels
  float a, b, c;       // conic
  float depth;         // camera z
  float opac;          // opacity × compensation (antialiased) or opacity
  int rx, ry;          // screen extent in pixels; 0, 0 = culled
};

// Returns false (and a zeroed result except depth) when the Gaussian is culled: z ≤ near, z ≥ far,
// non-finite, degenerate, never blended, or off-screen.
SPLATNET_HD inline bool project_gaussian(const Camera& cam, Vec3 p, const float q[4], const float s[3],
                                         float opacity, float near_plane, float far_plane,
                                         bool antialiased, Projected& out) {
  out = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0, 0};
  Vec3 pc = world_to_cam_point(cam, p);
  out.depth = pc.z;
  if (!(pc.z > near_plane && pc.z < far_plane)) return false;  // also rejects NaN
  Mat3 cov = quat_scale_to_covar(q, s);
  Mat3 cov_c = world_to_cam_covar(cam, cov);
  float J[6];
  persp_jacobian(cam, pc, J);
  Sym2 cov2 = project_covar(J, cov_c);
  Sym2 conic;
  float comp;
  if (!dilate_invert(cov2, conic, comp)) return false;
  float opac = antialiased ? opacity * comp : opacity;
  float rx, ry;
  if (!screen_extent(cov2, opac, rx, ry)) return false;
  float mx, my;
  project_mean(cam, pc, mx, my);
  if (!(mx + rx > 0.f && mx - rx < (float)cam.width && my + ry > 0.f && my - ry < (float)cam.height))
    return false;
  out.mx = mx;
  out.my = my;
  out.a = conic.xx;
  out.b = conic.xy;
  out.c = conic.yy;
  out.opac = opac;
  out.rx = (int)rx;
  out.ry = (int)ry;
  return true;
}

// Backward of project_gaussian for a Gaussian that was not culled. Adds to v_p, v_q, v_s, v_opacity.
SPLATNET_HD inline void project_gaussian_vjp(const Camera& cam, Vec3 p, const float q[4], const float s[3],
                                             float opacity, bool antialiased, float v_mx, float v_my,
                                             float v_a, float v_b, float v_c, float v_depth, float v_opac,
                                             Vec3& v_p, float v_q[4], float v_s[3], float& v_opacity) {
  Vec3 pc = world_to_cam_point(cam, p);
  Mat3 cov = quat_scale_to_covar(q, s);
  Mat3 cov_c = world_to_cam_covar(cam, cov);
  float J[6];
  persp_jacobian(cam, pc, J);
  Sym2 cov2 = project_covar(J, cov_c);
  Sym2 conic;
  float comp = 1.f;
  dilate_invert(cov2, conic, comp);
  float v_comp = 0.f;
  if (antialiased) {
    v_opacity += v_opac * comp;
    v_comp = v_opac * opacity;
  } else {
    v_opacity += v_opac;
  }
  Sym2 v_cov2 = dilate_invert_vjp(cov2, {v_a, v_b, v_c}, v_comp);
  Mat3 v_cov_c;
  float v_J[6];
  project_covar_vjp(J, cov_c, v_cov2, v_cov_c, v_J);
  Vec3 v_pc = {0.f, 0.f, v_depth};
  persp_jacobian_vjp(cam, pc, v_J, v_pc);
  project_mean_vjp(cam, pc, v_mx, v_my, v_pc);
  Vec3 vp = world_to_cam_point_vjp(cam, v_pc);
  v_p.x += vp.x;
  v_p.y += vp.y;
  v_p.z += vp.z;
  Mat3 v_cov = world_to_cam_covar_vjp(cam, v_cov_c);
  float vq[4], vs[3];
  quat_scale_to_covar_vjp(q, s, v_cov, vq, vs);
  for (int i = 0; i < 4; ++i) v_q[i] += vq[i];
  for (int i = 0; i < 3; ++i) v_s[i] += vs[i];
}

// Camera centre in world coordinates: −Rᵀ t.
SPLATNET_HD inline Vec3 camera_center(const Camera& cam) {
  const float* R = cam.R;
  const float* t = cam.t;
  return {-(R[0] * t[0] + R[3] * t[1] + R[6] * t[2]), -(R[1] * t[0] + R[4] * t[1] + R[7] * t[2]),
          -(R[2] * t[0] + R[5] * t[1] + R[8] * t[2])};
}

}  // namespace splatnet

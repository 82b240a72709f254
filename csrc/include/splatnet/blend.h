// Per-pixel Gaussian weight, opacity and front-to-back blend step, and their VJP. Shared by the CPU
// and CUDA rasterizers. Branch-free so that the CPU loop over a tile's pixels vectorises.
//
//   d = p − μ (p = pixel centre (x + 0.5, y + 0.5), μ = mean2d)
//   σ = ½ (a dx² + c dy²) + b dx dy        (conic (a, b, c) = Σ'⁻¹ upper triangle)
//   α = min(kAlphaMax, o · exp(−σ))
// Blend (docs/conventions.md): skip α < kAlphaThreshold; if T·(1 − α) < kTransmittanceMin the Gaussian is
// not blended and the pixel stops; else out += α T · value, T ← T (1 − α).
#pragma once

#include <math.h>
#include <string.h>

#include "splatnet/constants.h"

namespace splatnet {

// exp(x). On the device the hardware __expf; on the host a branch-free Cephes-style polynomial
// (relative error < 2e-7 on [−87, 88]) that GCC vectorises without -ffast-math, so the forward and
// the backward pass compute bit-identical α on the CPU (the backward replays the forward's
// skip/stop decisions).
SPLATNET_HD inline float fast_exp(float x) {
#ifdef __CUDA_ARCH__
  return __expf(x);
#else
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // n = round(x / ln 2) via the 1.5·2²³ trick (exact for |n| < 2²²), r = x − n ln 2 in two parts.
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int e = ((int)n + 127) << 23;
  float scale;
  memcpy(&scale, &e, sizeof(float));
  return p * scale;
#endif
}

// σ for the offset d = pixel − mean.
SPLATNET_HD inline float gaussian_sigma(float a, float b, float c, float dx, float dy) {
  return 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy;
}

// α from its unclamped value o · exp(−σ). (The CPU op computes exp(−σ) for a Gaussian over a row
// of pixels first, then α per pixel from it; the CUDA kernels call blend_alpha.)
SPLATNET_HD inline float clamp_alpha(float raw) { return raw < kAlphaMax ? raw : kAlphaMax; }

// α = min(kAlphaMax, o exp(−σ)).
SPLATNET_HD inline float blend_alpha(float opac, float sigma) { return clamp_alpha(opac * fast_exp(-sigma)); }

// Gradient of α w.r.t. (opacity, conic a, b, c, mean x, y) given v_alpha = dL/dα. The clamp at
// kAlphaMax passes no gradient. Outputs are written (not accumulated).
struct AlphaGrad {
  float opac, a, b, c, mx, my;
};

// Given g = exp(−σ) as the forward computed it.
SPLATNET_HD inline AlphaGrad blend_alpha_vjp_g(float opac, float g, float a, float b, float c, float dx, float dy,
                                               float v_alpha) {
  float raw = opac * g;
  float v_raw = raw < kAlphaMax ? v_alpha : 0.f;
  float v_sigma = -raw * v_raw;  // dα/dσ = −o g
  AlphaGrad out;
  out.opac = g * v_raw;
  out.a = 0.5f * dx * dx * v_sigma;
  out.b = dx * dy * v_sigma;
  out.c = 0.5f * dy * dy * v_sigma;
  // dx = px − mx → dσ/dmx = −(a dx + b dy).
  out.mx = -(a * dx + b * dy) * v_sigma;
  out.my = -(b * dx + c * dy) * v_sigma;
  return out;
}

SPLATNET_HD inline AlphaGrad blend_alpha_vjp(float opac, float a, float b, float c, float dx, float dy,
                                             float v_alpha) {
  return blend_alpha_vjp_g(opac, fast_exp(-gaussian_sigma(a, b, c, dx, dy)), a, b, c, dx, dy, v_alpha);
}

// One front-to-back step for one pixel. Given α and the pixel's state (T, done), returns the weight
// w = α T of this Gaussian (0 when skipped or stopped) and updates T and done. w > 0 exactly when
// the Gaussian is blended (then α ≥ kAlphaThreshold and T ≥ kTransmittanceMin, so α T > 0).
// Branch-free, with `done` and the masks as 0/1 floats: in that form GCC if-converts and vectorises
// the CPU op's loop over a tile's pixels (see ../shared/PERFORMANCE.md); bools there stay scalar.
SPLATNET_HD inline float blend_step(float alpha, float& T, float& done) {
  const float next_T = T * (1.f - alpha);
  const float visible = alpha >= kAlphaThreshold ? 1.f : 0.f;
  const float stop = next_T < kTransmittanceMin ? visible : 0.f;
  const float blend = visible * (1.f - stop) * (1.f - done);
  done = done > stop ? done : stop;
  const float w = blend * (alpha * T);
  T = blend > 0.f ? next_T : T;
  return w;
}

// The same step with a bool `done` (the CUDA kernels, one pixel per thread).
SPLATNET_HD inline float blend_step(float alpha, float& T, bool& done) {
  float d = done ? 1.f : 0.f;
  const float w = blend_step(alpha, T, d);
  done = d > 0.f;
  return w;
}

// Backward of the blend of one contributor i walked in reverse order. Inputs: α_i, the
// transmittance after it T_after = T_{i+1}, the value v_i (one channel), dL/dout for that channel,
// and acc = Σ_{j>i} v_j α_j T_j (the channel's colour accumulated behind i; update it with
// acc += v_i α_i T_i after the call). Per channel:
//   dL/dv_i += α_i T_i · dL/dout,   dL/dα_i += (v_i T_i − acc / (1 − α_i)) · dL/dout
// and, for the output alpha = 1 − T_final, dL/dα_i += T_final / (1 − α_i) · dL/dalpha.
// T_i itself is T_after / (1 − α_i).
SPLATNET_HD inline float blend_transmittance_before(float alpha, float T_after) {
  return T_after / (1.f - alpha);
}

}  // namespace splatnet

// Every constant of the splatnet renderer, in one place (see docs/conventions.md,
// "Rendering"). The C++ CPU kernels, the CUDA kernels and (by mirroring) the pure-torch reference
// all use these values; change one here and in splatnet/render/reference.py together.
//
// Plain C++ only (no torch, no std containers, no exceptions): this header is compiled by both
// g++ and nvcc.
#pragma once

#ifdef __CUDACC__
#define SPLATNET_HD __host__ __device__
#else
#define SPLATNET_HD
#endif

namespace splatnet {

// Screen-space tile edge in pixels (binning and per-tile depth sort).
constexpr int kTileSize = 16;

// 2D covariance dilation: Σ' = J W Σ Wᵀ Jᵀ + kDilation · I (low-pass filter of 3DGS / gsplat's eps2d).
constexpr float kDilation = 0.3f;

// Blending: α = min(kAlphaMax, o · exp(−½ dᵀ Σ'⁻¹ d)); a Gaussian with α < kAlphaThreshold is
// skipped; one whose blend would take the transmittance T below kTransmittanceMin is not blended
// and the pixel stops (strict "<", as in the reference 3DGS code).
constexpr float kAlphaThreshold = 1.0f / 255.0f;
constexpr float kAlphaMax = 0.99f;
constexpr float kTransmittanceMin = 1e-4f;

// EWA Jacobian: x/z and y/z are clamped to kFovClamp × the half field of view, measured from the
// principal point as in gsplat: the positive-x limit is (W − cx)/fx + (kFovClamp − 1)·(W/2)/fx,
// the negative-x limit cx/fx + (kFovClamp − 1)·(W/2)/fx (equal to the reference 3DGS 1.3·tan(fov/2)
// when the principal point is centred).
constexpr float kFovClamp = 1.3f;

// Default near / far planes of the public API (the ops take them as arguments): cull z ≤ near,
// z ≥ far.
constexpr float kDefaultNear = 0.01f;
constexpr float kDefaultFar = 1e10f;

// Screen extent ("radii") of a Gaussian: the half sides of the bounding box of the ellipse on which
// α falls to kAlphaThreshold, i.e. dᵀ Σ'⁻¹ d = 2 ln(o / kAlphaThreshold):
//   r_x = ceil(k · sqrt(Σ'_xx)), r_y = ceil(k · sqrt(Σ'_yy)), k = sqrt(2 ln(o / kAlphaThreshold))
// (k ≤ sqrt(2 ln 255) ≈ 3.33, gsplat's constant, for o ≤ 1; o is the compensated opacity in
// antialiased mode). Outside the box α < kAlphaThreshold, so tile binning changes no pixel value:
// a dense (untiled) reference renders the same image. A Gaussian with o ≤ kAlphaThreshold can never
// be blended and is culled (radii 0).

// Directions for SH are normalised with this floor on the length (a mean at the camera centre is
// culled by the near plane anyway; the floor only keeps the arithmetic finite).
constexpr float kDirNormMin = 1e-12f;

// Real spherical harmonics, 3DGS / gsplat order and signs (splatnet/sh.py mirrors these).
constexpr float kSH_C0 = 0.28209479177387814f;
constexpr float kSH_C1 = 0.4886025119029199f;
constexpr float kSH_C2_0 = 1.0925484305920792f;
constexpr float kSH_C2_1 = -1.0925484305920792f;
constexpr float kSH_C2_2 = 0.31539156525252005f;
constexpr float kSH_C2_3 = -1.0925484305920792f;
constexpr float kSH_C2_4 = 0.5462742152960396f;
constexpr float kSH_C3_0 = -0.5900435899266435f;
constexpr float kSH_C3_1 = 2.890611442640554f;
constexpr float kSH_C3_2 = -0.4570457994644658f;
constexpr float kSH_C3_3 = 0.3731763325901154f;
constexpr float kSH_C3_4 = -0.4570457994644658f;
constexpr float kSH_C3_5 = 1.445305721320277f;
constexpr float kSH_C3_6 = -0.5900435899266435f;
// Colour offset: rgb = max(0, kSHColorOffset + Σ_k Y_k(d) sh_k).
constexpr float kSHColorOffset = 0.5f;
constexpr int kMaxSHDegree = 3;

}  // namespace splatnet

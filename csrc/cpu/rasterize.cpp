// CPU rasterization op: tile binning, per-tile depth order and front-to-back alpha blending of
// generic channels, and its backward (each pixel's list walked in reverse). Schemas in csrc/ext.cpp;
// input checks (splatnet/op_checks.h), tile geometry and sort keys (splatnet/tiles.h) and the
// blending math (splatnet/blend.h) are shared with the CUDA op.
//
// Layout: I = B·C images. Binning writes, for every (image, tile), the ids of the Gaussians whose
// screen box touches the tile, sorted by depth (ties by id), into one flat int32 array; tile t of
// image i owns flat_ids[tile_offsets[i·NT + t] : tile_offsets[i·NT + t + 1]]. It sorts each image's
// visible Gaussians once (a radix sort on the depth keys) and fills the lists in that order, and
// packs those Gaussians in that order for the forward's own use: its tile lists then read memory in
// increasing order instead of at random (on real captures, with hundreds of thousands of Gaussians,
// the scattered reads had cost as much as the blending).
// Blending runs over all I·NT tiles, handed to the threads one at a time. Inside a tile, per-pixel
// state lives in struct-of-arrays buffers and the loop over the tile's pixels (for one Gaussian)
// is branch-free so that GCC vectorises it (see ../shared/PERFORMANCE.md); the rows and 8-pixel
// column blocks a Gaussian can reach (from its radii; see TileLayout) bound that loop, and the
// blend, the first four channels' sums (forward) and all the VJPs (backward, up to four channels)
// share one pass over them. The backward sums each Gaussian's gradients over a tile in registers
// and adds them to the outputs once per (Gaussian, tile) pair: plainly when each thread owns whole
// images, atomically when threads share an image; it prefetches the scattered inputs and outputs
// of the next batch of list entries.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "splatnet/blend.h"
#include "splatnet/constants.h"
#include "splatnet/op_checks.h"
#include "splatnet/tiles.h"

#if defined(_MSC_VER)
#define SPLATNET_NOINLINE __declspec(noinline)
#else
#define SPLATNET_NOINLINE __attribute__((noinline))
#endif

namespace splatnet {
namespace {

constexpr const char* kFwd = "splatnet.rasterize_forward";
constexpr const char* kBwd = "splatnet.rasterize_backward";
// Gaussians gathered into the tile-local struct-of-arrays buffers at a time.
constexpr int kBatch = 64;
// How far ahead (in Gaussians) the binning's packing pass prefetches its scattered reads.
constexpr int64_t kPrefetchAhead = 16;

// Rows of the tile (local, inclusive) whose pixel centres lie within the Gaussian's screen box.
inline void row_range(float my_local, int ry, int rows, int& r0, int& r1) {
  // pixel row y has its centre at y + 0.5; keep |y + 0.5 − my| ≤ ry.
  float lo = std::ceil(my_local - (float)ry - 0.5f), hi = std::floor(my_local + (float)ry - 0.5f);
  lo = lo < 0.f ? 0.f : (lo > (float)rows ? (float)rows : lo);  // clamped both ways: int-safe
  hi = hi < -1.f ? -1.f : (hi > (float)(rows - 1) ? (float)(rows - 1) : hi);
  r0 = (int)lo;
  r1 = (int)hi;
}

// G[p] = exp(−σ_p) for the pixels p ∈ [p0, p1) of a tile. Not inlined on purpose: the forward and
// the backward call this one piece of machine code, so the backward replays the forward's α
// (and its skip / stop decisions) bit for bit.
SPLATNET_NOINLINE void tile_gaussian(const float* __restrict px, const float* __restrict py, int p0, int p1,
                                     float mx, float my, float a, float b, float c, float* __restrict G) {
#pragma omp simd
  for (int p = p0; p < p1; ++p) {
    const float dx = px[p] - mx, dy = py[p] - my;
    G[p] = fast_exp(-gaussian_sigma(a, b, c, dx, dy));
  }
}

// Calls body(i) for i in [0, n) on the intra-op threads, handing out items one at a time from a
// shared counter (items such as tiles or images differ widely in cost; at::parallel_for splits
// statically).
template <class F>
void parallel_dynamic(int64_t n, const F& body) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), n), 1, [&](int64_t, int64_t) {
    for (int64_t i = next++; i < n; i = next++) body(i);
  });
}

// What blending needs of one Gaussian in one image (32 bytes: one cache line holds it whole).
struct alignas(32) Splat {
  float mx, my, a, b, c, o;  // mean2d, conic, opacity
  int rx, ry;                // screen radii
};

inline Splat splat_at(int64_t o, const float* m2d, const float* con, const float* opac, const int* rad) {
  return {m2d[o * 2], m2d[o * 2 + 1], con[o * 3], con[o * 3 + 1], con[o * 3 + 2], opac[o], rad[o * 2], rad[o * 2 + 1]};
}

// Stable LSD radix sort of keys by their high 32 bits (8 bits a pass; passes where all keys share
// the digit are skipped). tmp is scratch of the same size.
void radix_sort_high32(std::vector<uint64_t>& keys, std::vector<uint64_t>& tmp) {
  tmp.resize(keys.size());
  for (int shift = 32; shift < 64; shift += 8) {
    int64_t count[257] = {0};
    for (const uint64_t k : keys) ++count[((k >> shift) & 255u) + 1];
    if (std::any_of(count + 1, count + 257, [&](int64_t c) { return c == (int64_t)keys.size(); })) continue;
    for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
    for (const uint64_t k : keys) tmp[count[(k >> shift) & 255u]++] = k;
    keys.swap(tmp);
  }
}

// The tile lists of a forward pass, and the Gaussians they hold packed in depth order.
struct Bins {
  at::Tensor tile_offsets;  // [I·NT + 1] int32
  at::Tensor flat_ids;      // [M] int32: Gaussian index n within its image, per tile by (depth, n)
  // Internal: the same lists as indices into the packed copies below, which hold each image's
  // visible Gaussians sorted by (depth, n) from packed index begin[i] on. A tile's list is then
  // increasing in memory, so blending streams through it instead of jumping around the inputs.
  std::vector<int32_t> packed_ids;  // [M]
  std::vector<int64_t> begin;       // [I + 1]
  std::vector<Splat> splats;  // [V]
  std::vector<float> val;      // [V, Ch]
};

// Bins every visible Gaussian into the tiles its screen box touches, ordered by depth (ties by n)
// within each tile: one stable radix sort per image of the visible Gaussians' (depth, n) keys,
// then the lists filled in that order, which leaves each of them sorted.
Bins bin_and_sort(const float* m2d, const float* con, const float* val, const float* opac, const int* rad,
                  const float* dep, int64_t I, int64_t N, int64_t Ch, const TileGrid& g,
                  const at::TensorOptions& opts) {
  const int64_t NT = num_tiles(g);
  Bins bins;
  std::vector<std::vector<uint64_t>> keys(I);
  parallel_dynamic(I, [&](int64_t i) {
    std::vector<uint64_t>& k = keys[i];
    for (int64_t n = 0; n < N; ++n) {
      int x0, x1, y0, y1;
      const int64_t o = i * N + n;
      if (tile_rect(m2d[o * 2], m2d[o * 2 + 1], rad[o * 2], rad[o * 2 + 1], g, x0, x1, y0, y1))
        k.push_back(depth_id_key(dep[o], (int32_t)n));  // in increasing n: the stable sort keeps ties so
    }
    std::vector<uint64_t> tmp;
    radix_sort_high32(k, tmp);
  });
  bins.begin.assign(I + 1, 0);
  for (int64_t i = 0; i < I; ++i) bins.begin[i + 1] = bins.begin[i] + (int64_t)keys[i].size();
  const int64_t V = bins.begin[I];
  bins.splats.resize(V);
  bins.val.resize(V * Ch);
  std::vector<int64_t> offsets(I * NT + 1, 0);
  int64_t* cnt = offsets.data() + 1;
  // Pack each image's visible Gaussians in depth order and count its tiles' lists (one image per
  // task: no races).
  parallel_dynamic(I, [&](int64_t i) {
    int64_t* c = cnt + i * NT;
    const std::vector<uint64_t>& k = keys[i];
    const int64_t nv = (int64_t)k.size();
    for (int64_t r = 0; r < nv; ++r) {
      if (r + kPrefetchAhead < nv) {  // the inputs are read in depth order, i.e. scattered
        const int64_t o = i * N + depth_id_key_id(k[r + kPrefetchAhead]);
        __builtin_prefetch(m2d + o * 2);
        __builtin_prefetch(con + o * 3);
        __builtin_prefetch(opac + o);
        __builtin_prefetch(rad + o * 2);
        __builtin_prefetch(val + o * Ch);
      }
      const int64_t o = i * N + depth_id_key_id(k[r]), q = bins.begin[i] + r;
      const Splat sp = splat_at(o, m2d, con, opac, rad);
      bins.splats[q] = sp;
      for (int64_t ch = 0; ch < Ch; ++ch) bins.val[q * Ch + ch] = val[o * Ch + ch];
      int x0, x1, y0, y1;
      tile_rect(sp.mx, sp.my, sp.rx, sp.ry, g, x0, x1, y0, y1);
      for (int ty = y0; ty < y1; ++ty)
        for (int tx = x0; tx < x1; ++tx) c[ty * g.tiles_x + tx] += 1;
    }
  });
  for (int64_t t = 0; t < I * NT; ++t) offsets[t + 1] += offsets[t];
  const int64_t M = offsets[I * NT];
  TORCH_CHECK(M < (int64_t)std::numeric_limits<int32_t>::max(), kFwd, ": ", M,
              " (Gaussian, tile) pairs exceed the int32 range; render fewer cameras or Gaussians per call");
  bins.tile_offsets = at::empty({I * NT + 1}, opts.dtype(at::kInt));
  bins.flat_ids = at::empty({M}, opts.dtype(at::kInt));
  bins.packed_ids.resize(M);
  int* p_off = bins.tile_offsets.data_ptr<int>();
  int* p_ids = bins.flat_ids.data_ptr<int>();
  for (int64_t t = 0; t <= I * NT; ++t) p_off[t] = (int)offsets[t];
  // Fill the lists in depth order.
  parallel_dynamic(I, [&](int64_t i) {
    std::vector<int64_t> cursor(offsets.begin() + i * NT, offsets.begin() + (i + 1) * NT);
    for (int64_t r = 0; r < (int64_t)keys[i].size(); ++r) {
      const int64_t q = bins.begin[i] + r;
      const int32_t n = depth_id_key_id(keys[i][r]);
      int x0, x1, y0, y1;
      const Splat& sp = bins.splats[q];
      tile_rect(sp.mx, sp.my, sp.rx, sp.ry, g, x0, x1, y0, y1);
      for (int ty = y0; ty < y1; ++ty)
        for (int tx = x0; tx < x1; ++tx) {
          const int64_t j = cursor[ty * g.tiles_x + tx]++;
          p_ids[j] = n;
          bins.packed_ids[j] = (int32_t)r;
        }
    }
  });
  return bins;
}

// Order of a tile's pixels in the per-pixel buffers: column blocks of bw pixels (8 = one AVX2
// vector when the tile size allows), each block row-major, i.e. p = blk·(ts·bw) + r·bw + (c mod bw).
// A Gaussian's screen box then covers one contiguous range of p per block it reaches (its rows
// within that block), so small Gaussians cost a fraction of the tile.
struct TileLayout {
  int ts, bw, P;
  int index(int r, int c) const { return (c / bw) * (ts * bw) + r * bw + c % bw; }
  int row(int p) const { return (p % (ts * bw)) / bw; }
  int col(int p) const { return (p / (ts * bw)) * bw + p % bw; }
  int begin(int blk, int r0) const { return blk * ts * bw + r0 * bw; }
};

TileLayout make_layout(int ts) { return {ts, ts % 8 == 0 ? 8 : ts, ts * ts}; }

// Pixel centres of a tile in tile-local coordinates.
void tile_pixel_centres(const TileLayout& L, float* px, float* py) {
  for (int p = 0; p < L.P; ++p) {
    px[p] = (float)L.col(p) + 0.5f;
    py[p] = (float)L.row(p) + 0.5f;
  }
}

// Front-to-back blend of one Gaussian (opacity o, list position jj, values v[Ch]) over the pixels
// [p0, p1) of a tile, given G = exp(−σ) there: updates T, done, last and out [Ch, P]. The first K
// channels are accumulated in the same pass (one loop, vectorised over pixels); any further ones
// from the weights w in a loop each.
template <int K>
void blend_range_k(int p0, int p1, float o, int jj, const float* v, int64_t Ch, int P, const float* __restrict G,
                   float* __restrict T, float* __restrict done, int* __restrict last, float* __restrict w,
                   float* __restrict out) {
  // 0-based loops over offset pointers: GCC then emits plain vector loads (with p0..p1 it gathers).
  const int n = p1 - p0;
  G += p0;
  T += p0;
  done += p0;
  last += p0;
  w += p0;
  out += p0;
  const float v0 = K > 0 ? v[0] : 0.f, v1 = K > 1 ? v[1] : 0.f, v2 = K > 2 ? v[2] : 0.f, v3 = K > 3 ? v[3] : 0.f;
  float* __restrict o0 = out;
  float* __restrict o1 = out + (K > 1 ? P : 0);
  float* __restrict o2 = out + (K > 2 ? 2 * P : 0);
  float* __restrict o3 = out + (K > 3 ? 3 * P : 0);
#pragma omp simd
  for (int p = 0; p < n; ++p) {
    // blend_step's 0/1-float form of `done`: GCC if-converts and vectorises it.
    const float wp = blend_step(clamp_alpha(o * G[p]), T[p], done[p]);
    w[p] = wp;
    last[p] = wp > 0.f ? jj : last[p];  // w > 0 exactly when blended
    if constexpr (K > 0) o0[p] += wp * v0;
    if constexpr (K > 1) o1[p] += wp * v1;
    if constexpr (K > 2) o2[p] += wp * v2;
    if constexpr (K > 3) o3[p] += wp * v3;
  }
  for (int64_t ch = K; ch < Ch; ++ch) {
    const float vc = v[ch];
    float* __restrict op = out + ch * P;
#pragma omp simd
    for (int p = 0; p < n; ++p) op[p] += w[p] * vc;
  }
}

inline void blend_range(int p0, int p1, float o, int jj, const float* v, int64_t Ch, int P, const float* G,
                        float* T, float* done, int* last, float* w, float* out) {
  switch (std::min<int64_t>(Ch, 4)) {
    case 0: return blend_range_k<0>(p0, p1, o, jj, v, Ch, P, G, T, done, last, w, out);
    case 1: return blend_range_k<1>(p0, p1, o, jj, v, Ch, P, G, T, done, last, w, out);
    case 2: return blend_range_k<2>(p0, p1, o, jj, v, Ch, P, G, T, done, last, w, out);
    case 3: return blend_range_k<3>(p0, p1, o, jj, v, Ch, P, G, T, done, last, w, out);
    default: return blend_range_k<4>(p0, p1, o, jj, v, Ch, P, G, T, done, last, w, out);
  }
}

// Per-pixel state of one tile in the backward ([P] each; [Ch, P] for vout and S), walked back to
// front. Inputs: pixel centres, the forward's last contributor (as float) and final T, dL/dalpha,
// dL/dimage. State: T (transmittance after the current Gaussian, divided back step by step) and S
// (colour accumulated behind it). Scratch: G (exp(−σ)) and, for more than 4 channels, A, Ti, Ra, vA.
struct BackwardTile {
  int P;
  int64_t Ch;
  const float *px, *py, *lastf, *Tf, *vao, *vout;
  float *T, *S, *G, *A, *Ti, *Ra, *vA;
};

// One Gaussian as the backward uses it: list index, opacity, conic, tile-local mean, values [Ch].
struct BackwardGaussian {
  float jf, o, a, b, c, mx, my;
  const float* v;
};

// Per-(Gaussian, tile) sums of the backward: dL/d(opacity, conic a, b, c, mean x, y) and dL/dvalue
// per channel (v [Ch]).
struct GradSums {
  float o, a, b, c, mx, my;
  float* v;
};

// Backward of one Gaussian over the pixels [p0, p1) of a tile (G filled there): the reverse step of
// blend.h (T_i = T_{i+1} / (1 − α_i), blend_transmittance_before), the VJPs of its K ≤ 4 channels
// (blend.h's formulas) and of α (blend_alpha_vjp_g), all in one loop vectorised over pixels. Updates
// t.T and t.S, adds to the sums; returns whether any pixel blended the Gaussian. Masks are 0/1
// floats so that GCC if-converts the loop; the loop runs from 0 over offset pointers, for which GCC
// emits plain vector loads (from p0 to p1 it emits gathers).
template <int K>
bool backward_range_k(const BackwardTile& t, const BackwardGaussian& gs, int p0, int p1, GradSums& sums) {
  const int n = p1 - p0, P = t.P;
  const float *__restrict px = t.px + p0, *__restrict py = t.py + p0, *__restrict G = t.G + p0;
  const float *__restrict lastf = t.lastf + p0, *__restrict Tf = t.Tf + p0, *__restrict vao = t.vao + p0;
  const float *__restrict vo0 = t.vout + p0, *__restrict vo1 = vo0 + (K > 1 ? P : 0);
  const float *__restrict vo2 = vo0 + (K > 2 ? 2 * P : 0), *__restrict vo3 = vo0 + (K > 3 ? 3 * P : 0);
  float *__restrict T = t.T + p0, *__restrict S0 = t.S + p0, *__restrict S1 = S0 + (K > 1 ? P : 0);
  float *__restrict S2 = S0 + (K > 2 ? 2 * P : 0), *__restrict S3 = S0 + (K > 3 ? 3 * P : 0);
  const float jf = gs.jf, o = gs.o, a = gs.a, b = gs.b, c = gs.c, mx = gs.mx, my = gs.my;
  const float v0 = gs.v[0], v1 = K > 1 ? gs.v[1] : 0.f, v2 = K > 2 ? gs.v[2] : 0.f, v3 = K > 3 ? gs.v[3] : 0.f;
  float any = 0.f, s_o = 0.f, s_a = 0.f, s_b = 0.f, s_c = 0.f, s_mx = 0.f, s_my = 0.f;
  float g0 = 0.f, g1 = 0.f, g2 = 0.f, g3 = 0.f;
#pragma omp simd reduction(+ : any, s_o, s_a, s_b, s_c, s_mx, s_my, g0, g1, g2, g3)
  for (int p = 0; p < n; ++p) {
    const float al = clamp_alpha(o * G[p]);
    const float contrib = (jf < lastf[p]) ? (al >= kAlphaThreshold ? 1.f : 0.f) : 0.f;
    const float ra = 1.f / (1.f - al);
    const float T0 = T[p];
    const float Tbefore = T0 * ra;
    T[p] = contrib > 0.f ? Tbefore : T0;
    any += contrib;
    const float Ti = contrib * Tbefore, Ra = contrib * ra, wgt = contrib * al * Tbefore;
    float vA = contrib * (Tf[p] * ra * vao[p]);
    g0 += wgt * vo0[p];
    vA += (v0 * Ti - S0[p] * Ra) * vo0[p];
    S0[p] += v0 * wgt;
    if constexpr (K > 1) {
      g1 += wgt * vo1[p];
      vA += (v1 * Ti - S1[p] * Ra) * vo1[p];
      S1[p] += v1 * wgt;
    }
    if constexpr (K > 2) {
      g2 += wgt * vo2[p];
      vA += (v2 * Ti - S2[p] * Ra) * vo2[p];
      S2[p] += v2 * wgt;
    }
    if constexpr (K > 3) {
      g3 += wgt * vo3[p];
      vA += (v3 * Ti - S3[p] * Ra) * vo3[p];
      S3[p] += v3 * wgt;
    }
    // vA is 0 where the Gaussian is not a contributor, and so is its gradient.
    const AlphaGrad ag = blend_alpha_vjp_g(o, G[p], a, b, c, px[p] - mx, py[p] - my, vA);
    s_o += ag.opac;
    s_a += ag.a;
    s_b += ag.b;
    s_c += ag.c;
    s_mx += ag.mx;
    s_my += ag.my;
  }
  sums.o += s_o;
  sums.a += s_a;
  sums.b += s_b;
  sums.c += s_c;
  sums.mx += s_mx;
  sums.my += s_my;
  sums.v[0] += g0;
  if constexpr (K > 1) sums.v[1] += g1;
  if constexpr (K > 2) sums.v[2] += g2;
  if constexpr (K > 3) sums.v[3] += g3;
  return any > 0.f;
}

// The same for any number of channels: the reverse step first (into the scratch A, Ti, Ra, vA),
// then a loop per channel, then the VJP of α.
bool backward_range_any(const BackwardTile& t, const BackwardGaussian& gs, int p0, int p1, GradSums& sums) {
  const int n = p1 - p0;
  const float *__restrict px = t.px + p0, *__restrict py = t.py + p0, *__restrict G = t.G + p0;
  const float *__restrict lastf = t.lastf + p0, *__restrict Tf = t.Tf + p0, *__restrict vao = t.vao + p0;
  float *__restrict T = t.T + p0, *__restrict A = t.A + p0, *__restrict Ti = t.Ti + p0;
  float *__restrict Ra = t.Ra + p0, *__restrict vA = t.vA + p0;
  const float jf = gs.jf, o = gs.o, a = gs.a, b = gs.b, c = gs.c, mx = gs.mx, my = gs.my;
  float any = 0.f;
#pragma omp simd reduction(+ : any)
  for (int p = 0; p < n; ++p) {
    const float al = clamp_alpha(o * G[p]);
    const float contrib = (jf < lastf[p]) ? (al >= kAlphaThreshold ? 1.f : 0.f) : 0.f;
    const float ra = 1.f / (1.f - al);
    const float T0 = T[p];
    const float Tbefore = T0 * ra;
    A[p] = contrib * al;
    Ti[p] = contrib * Tbefore;
    Ra[p] = contrib * ra;
    vA[p] = contrib * (Tf[p] * ra * vao[p]);
    T[p] = contrib > 0.f ? Tbefore : T0;
    any += contrib;
  }
  if (any == 0.f) return false;
  for (int64_t ch = 0; ch < t.Ch; ++ch) {
    const float vc = gs.v[ch];
    const float* __restrict vo = t.vout + ch * t.P + p0;
    float* __restrict S = t.S + ch * t.P + p0;
    float acc = 0.f;
#pragma omp simd reduction(+ : acc)
    for (int p = 0; p < n; ++p) {
      const float wgt = A[p] * Ti[p];
      acc += wgt * vo[p];
      vA[p] += (vc * Ti[p] - S[p] * Ra[p]) * vo[p];
      S[p] += vc * wgt;
    }
    sums.v[ch] += acc;
  }
  float s_o = 0.f, s_a = 0.f, s_b = 0.f, s_c = 0.f, s_mx = 0.f, s_my = 0.f;
#pragma omp simd reduction(+ : s_o, s_a, s_b, s_c, s_mx, s_my)
  for (int p = 0; p < n; ++p) {
    // vA is 0 where the Gaussian is not a contributor, and so is its gradient.
    const AlphaGrad ag = blend_alpha_vjp_g(o, G[p], a, b, c, px[p] - mx, py[p] - my, vA[p]);
    s_o += ag.opac;
    s_a += ag.a;
    s_b += ag.b;
    s_c += ag.c;
    s_mx += ag.mx;
    s_my += ag.my;
  }
  sums.o += s_o;
  sums.a += s_a;
  sums.b += s_b;
  sums.c += s_c;
  sums.mx += s_mx;
  sums.my += s_my;
  return true;
}

inline bool backward_range(const BackwardTile& t, const BackwardGaussian& gs, int p0, int p1, GradSums& sums) {
  switch (t.Ch) {
    case 1: return backward_range_k<1>(t, gs, p0, p1, sums);
    case 2: return backward_range_k<2>(t, gs, p0, p1, sums);
    case 3: return backward_range_k<3>(t, gs, p0, p1, sums);
    case 4: return backward_range_k<4>(t, gs, p0, p1, sums);
    default: return backward_range_any(t, gs, p0, p1, sums);
  }
}

// Tile-local copies of a batch of Gaussians (struct of arrays).
struct Batch {
  float mx[kBatch], my[kBatch], a[kBatch], b[kBatch], c[kBatch], o[kBatch];
  int r0[kBatch], r1[kBatch];  // rows reached (inclusive; empty when r0 > r1)
  int b0[kBatch], b1[kBatch];  // column blocks reached (inclusive; empty when b0 > b1)
  std::vector<float> vals;  // [kBatch, Ch]
};

// Entry k of a batch: the Gaussian s, values v[Ch], for the tile at (ox, oy) of rows × cols pixels.
inline void set_entry(Batch& bt, int k, const Splat& s, const float* v, int64_t Ch, float ox, float oy, int rows,
                      int cols, int bw) {
  bt.mx[k] = s.mx - ox;
  bt.my[k] = s.my - oy;
  bt.a[k] = s.a;
  bt.b[k] = s.b;
  bt.c[k] = s.c;
  bt.o[k] = s.o;
  row_range(bt.my[k], s.ry, rows, bt.r0[k], bt.r1[k]);
  int c0, c1;
  row_range(bt.mx[k], s.rx, cols, c0, c1);  // the same test along x
  bt.b0[k] = c0 / bw;
  bt.b1[k] = c0 > c1 ? -1 : c1 / bw;
  for (int64_t ch = 0; ch < Ch; ++ch) bt.vals[k * Ch + ch] = v[ch];
}

// Gaussians base + ids[0, count) of the op's inputs m2d [·, 2], con [·, 3], val [·, Ch], opac,
// rad [·, 2].
void gather(Batch& bt, int count, const int* ids, int64_t base, int64_t Ch, const float* m2d, const float* con,
            const float* val, const float* opac, const int* rad, float ox, float oy, int rows, int cols, int bw) {
  for (int k = 0; k < count; ++k) {
    const int64_t o = base + ids[k];
    set_entry(bt, k, splat_at(o, m2d, con, opac, rad), val + o * Ch, Ch, ox, oy, rows, cols, bw);
  }
}

// Gaussians base + ids[0, count) of packed copies (Bins).
void gather_packed(Batch& bt, int count, const int* ids, int64_t base, int64_t Ch, const Splat* splats,
                   const float* val, float ox, float oy, int rows, int cols, int bw) {
  for (int k = 0; k < count; ++k) {
    const int64_t q = base + ids[k];
    set_entry(bt, k, splats[q], val + q * Ch, Ch, ox, oy, rows, cols, bw);
  }
}

// Asks for the data gather() will read for the Gaussians base + ids[0, count), so that the cache
// misses of a depth-sorted (i.e. scattered in memory) list overlap with the work on the previous
// batch.
inline void prefetch(int count, const int* ids, int64_t base, int64_t Ch, const float* m2d, const float* con,
                     const float* val, const float* opac, const int* rad) {
  for (int k = 0; k < count; ++k) {
    const int64_t o = base + ids[k];
    __builtin_prefetch(m2d + o * 2);
    __builtin_prefetch(con + o * 3);
    __builtin_prefetch(opac + o);
    __builtin_prefetch(rad + o * 2);
    __builtin_prefetch(val + o * Ch);
  }
}

// The same for gather_packed().
inline void prefetch_packed(int count, const int* ids, int64_t base, int64_t Ch, const Splat* splats,
                            const float* val) {
  for (int k = 0; k < count; ++k) {
    const int64_t q = base + ids[k];
    __builtin_prefetch(splats + q);
    __builtin_prefetch(val + q * Ch);
  }
}

// The shared checks (splatnet/op_checks.h) with this back end's tile sizes and list ids.
RasterDims check_raster_inputs_cpu(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                   const at::Tensor& values, const at::Tensor& opac, const at::Tensor& radii,
                                   int64_t width, int64_t height, int64_t tile_size) {
  const RasterDims d = check_raster_inputs(op, means2d, conics, values, opac, radii, width, height, tile_size,
                                           c10::DeviceType::CPU, /*tile_size_ok=*/true,
                                           "tile_size must be in 1.." + std::to_string(kMaxTileSize));
  TORCH_CHECK(d.N < (int64_t)std::numeric_limits<int32_t>::max(), op, ": ", d.N,
              " Gaussians per scene exceed the int32 ids of the tile lists");
  return d;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_forward_cpu(
    const at::Tensor& means2d,  // [B, C, N, 2]
    const at::Tensor& conics,   // [B, C, N, 3]
    const at::Tensor& values,   // [B, C, N, Ch]
    const at::Tensor& opac,     // [B, C, N]
    const at::Tensor& depths,   // [B, C, N]
    const at::Tensor& radii,    // [B, C, N, 2] int32
    int64_t width, int64_t height, int64_t tile_size) {
  const RasterDims d = check_raster_inputs_cpu(kFwd, means2d, conics, values, opac, radii, width, height,
                                               tile_size);
  check_raster_depths(kFwd, d, means2d, depths, c10::DeviceType::CPU);
  const int64_t B = d.B, C = d.C, N = d.N, Ch = d.Ch;
  check_finite_cpu(means2d, kFwd, "means2d");
  check_finite_cpu(conics, kFwd, "conics");
  check_finite_cpu(values, kFwd, "values");
  check_finite_cpu(opac, kFwd, "opac");
  check_finite_cpu(depths, kFwd, "depths");
  const TileGrid& g = d.grid;
  const int64_t I = d.I, NT = d.num_tiles, H = g.height, W = g.width;
  auto opts = means2d.options();
  auto image = at::zeros({B, C, H, W, Ch}, opts);
  auto alpha = at::zeros({B, C, H, W, 1}, opts);
  auto last_ids = at::zeros({B, C, H, W}, opts.dtype(at::kInt));
  auto final_T = at::ones({B, C, H, W}, opts);
  const float* p_m2d = means2d.data_ptr<float>();
  const float* p_con = conics.data_ptr<float>();
  const float* p_val = values.data_ptr<float>();
  const float* p_op = opac.data_ptr<float>();
  const int* p_rad = radii.data_ptr<int>();
  Bins bins = bin_and_sort(p_m2d, p_con, p_val, p_op, p_rad, depths.data_ptr<float>(), I, N, Ch, g, opts);
  at::Tensor tile_offsets = bins.tile_offsets, flat_ids = bins.flat_ids;
  if (I == 0 || flat_ids.numel() == 0) return {image, alpha, tile_offsets, flat_ids, last_ids, final_T};

  const int* p_off = tile_offsets.data_ptr<int>();
  const int* p_pk = bins.packed_ids.data();
  const Splat* k_splat = bins.splats.data();
  const float* k_val = bins.val.data();
  float* o_img = image.data_ptr<float>();
  float* o_alpha = alpha.data_ptr<float>();
  int* o_last = last_ids.data_ptr<int>();
  float* o_T = final_T.data_ptr<float>();
  const int ts = g.tile_size, P = ts * ts;
  const TileLayout L = make_layout(ts);

  // Tiles differ widely in cost (list lengths), so threads take them one at a time from a shared
  // counter instead of at::parallel_for's static split.
  std::atomic<int64_t> next_tile{0};
  const int64_t total_tiles = I * NT;
  at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), total_tiles), 1, [&](int64_t, int64_t) {
    std::vector<float> px(P), py(P), T(P), done(P), G(P), w(P), out(P * Ch);
    std::vector<int> last(P);
    Batch bt;
    bt.vals.resize(kBatch * std::max<int64_t>(Ch, 1));
    tile_pixel_centres(L, px.data(), py.data());
    for (int64_t it = next_tile++; it < total_tiles; it = next_tile++) {
      const int64_t img = it / NT, t = it % NT;
      const int begin = p_off[it], end = p_off[it + 1];
      if (begin == end) continue;  // outputs already hold the empty-pixel values
      const int tx = (int)(t % g.tiles_x), ty = (int)(t / g.tiles_x);
      const int x0 = tx * ts, y0 = ty * ts;
      const int cols = std::min(ts, g.width - x0), rows = std::min(ts, g.height - y0);
      for (int p = 0; p < P; ++p) {
        T[p] = 1.f;
        // Pixels beyond the image edge start "done" so they do not hold up the early exit.
        done[p] = (L.col(p) < cols && L.row(p) < rows) ? 0.f : 1.f;
        last[p] = 0;
      }
      std::fill(out.begin(), out.end(), 0.f);
      for (int j0 = begin; j0 < end; j0 += kBatch) {
        const int count = std::min(kBatch, end - j0);
        gather_packed(bt, count, p_pk + j0, bins.begin[img], Ch, k_splat, k_val, (float)x0, (float)y0, rows, cols,
                      L.bw);
        if (j0 + kBatch < end)
          prefetch_packed(std::min(kBatch, end - j0 - kBatch), p_pk + j0 + kBatch, bins.begin[img], Ch, k_splat, k_val);
        for (int k = 0; k < count; ++k) {
          if (bt.r0[k] > bt.r1[k]) continue;
          const int jj = j0 - begin + k + 1;
          // A Gaussian over every row of the tile covers its column blocks in one range.
          const bool full = bt.r0[k] == 0 && bt.r1[k] == ts - 1;
          for (int blk = bt.b0[k]; blk <= bt.b1[k]; ++blk) {
            const int p0 = L.begin(blk, bt.r0[k]);
            const int p1 = full ? L.begin(bt.b1[k] + 1, 0) : L.begin(blk, bt.r1[k] + 1);
            tile_gaussian(px.data(), py.data(), p0, p1, bt.mx[k], bt.my[k], bt.a[k], bt.b[k], bt.c[k], G.data());
            blend_range(p0, p1, bt.o[k], jj, bt.vals.data() + k * Ch, Ch, P, G.data(), T.data(), done.data(),
                        last.data(), w.data(), out.data());
            if (full) break;
          }
        }
        // Early exit once every pixel of the tile has stopped.
        float all_done = 1.f;
        for (int p = 0; p < P; ++p) all_done = std::min(all_done, done[p]);
        if (all_done > 0.f) break;
      }
      for (int r = 0; r < rows; ++r)
        for (int cc = 0; cc < cols; ++cc) {
          const int p = L.index(r, cc);
          const int64_t pix = (img * H + y0 + r) * W + x0 + cc;
          for (int64_t ch = 0; ch < Ch; ++ch) o_img[pix * Ch + ch] = out[ch * P + p];
          o_alpha[pix] = 1.f - T[p];
          o_T[pix] = T[p];
          o_last[pix] = last[p];
        }
    }
  });
  return {image, alpha, tile_offsets, flat_ids, last_ids, final_T};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_backward_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& values, const at::Tensor& opac,
    const at::Tensor& radii, int64_t width, int64_t height, int64_t tile_size,
    const at::Tensor& tile_offsets,  // [B·C·TH·TW + 1] int32
    const at::Tensor& flat_ids,      // [M] int32
    const at::Tensor& last_ids,      // [B, C, H, W] int32
    const at::Tensor& final_T,       // [B, C, H, W]
    const at::Tensor& v_image,       // [B, C, H, W, Ch]
    const at::Tensor& v_alpha) {     // [B, C, H, W, 1]
  const RasterDims d = check_raster_inputs_cpu(kBwd, means2d, conics, values, opac, radii, width, height,
                                               tile_size);
  check_raster_grads(kBwd, d, means2d, tile_offsets, flat_ids, last_ids, final_T, v_image, v_alpha,
                     c10::DeviceType::CPU);
  const TileGrid& g = d.grid;
  const int64_t I = d.I, NT = d.num_tiles, N = d.N, Ch = d.Ch, H = g.height, W = g.width;
  auto g_m2d = at::zeros_like(means2d);
  auto g_con = at::zeros_like(conics);
  auto g_val = at::zeros_like(values);
  auto g_op = at::zeros_like(opac);
  if (I == 0 || flat_ids.numel() == 0) return {g_m2d, g_con, g_val, g_op};

  const float* p_m2d = means2d.data_ptr<float>();
  const float* p_con = conics.data_ptr<float>();
  const float* p_val = values.data_ptr<float>();
  const float* p_op = opac.data_ptr<float>();
  const int* p_rad = radii.data_ptr<int>();
  const int* p_off = tile_offsets.data_ptr<int>();
  const int* p_ids = flat_ids.data_ptr<int>();
  const int* p_last = last_ids.data_ptr<int>();
  const float* p_T = final_T.data_ptr<float>();
  const float* p_vimg = v_image.data_ptr<float>();
  const float* p_va = v_alpha.data_ptr<float>();
  float* o_m2d = g_m2d.data_ptr<float>();
  float* o_con = g_con.data_ptr<float>();
  float* o_val = g_val.data_ptr<float>();
  float* o_op = g_op.data_ptr<float>();
  const int ts = g.tile_size, P = ts * ts;
  const TileLayout L = make_layout(ts);

  // Work items, handed out one at a time from a shared counter (their costs differ widely):
  // with enough images per thread, whole images, longest first, so that no two threads touch the
  // same Gaussian and the gradients are accumulated without atomics; otherwise single tiles, with
  // one atomic add per (Gaussian, tile) pair and gradient.
  const int64_t nthreads = at::get_num_threads();
  const bool by_image = nthreads == 1 || I >= 2 * nthreads;
  std::vector<int64_t> order;
  if (by_image) {
    order.resize(I);
    for (int64_t i = 0; i < I; ++i) order[i] = i;
    auto cost = [&](int64_t i) { return p_off[(i + 1) * NT] - p_off[i * NT]; };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cost(a) > cost(b); });
  }
  const int64_t items = by_image ? I : I * NT;
  std::atomic<int64_t> next_item{0};
  at::parallel_for(0, std::min<int64_t>(nthreads, items), 1, [&](int64_t, int64_t) {
    std::vector<float> px(P), py(P), T(P), Tf(P), vao(P), G(P), A(P), Ti(P), Ra(P), vA(P), lastf(P);
    std::vector<float> vout(P * Ch), S(P * Ch), gv(std::max<int64_t>(Ch, 1));
    std::vector<int> last(P);
    Batch bt;
    bt.vals.resize(kBatch * std::max<int64_t>(Ch, 1));
    tile_pixel_centres(L, px.data(), py.data());
    const BackwardTile tile{P,         Ch,       px.data(), py.data(), lastf.data(), Tf.data(),
                            vao.data(), vout.data(), T.data(), S.data(), G.data(),     A.data(),
                            Ti.data(), Ra.data(), vA.data()};
    auto add = [by_image](float* dst, float v) {
      if (by_image) {
        *dst += v;
      } else {
#pragma omp atomic
        *dst += v;
      }
    };
    auto process_tile = [&](int64_t it) {
      const int64_t img = it / NT, t = it % NT;
      const int begin = p_off[it], end = p_off[it + 1];
      if (begin == end) return;
      const int tx = (int)(t % g.tiles_x), ty = (int)(t / g.tiles_x);
      const int x0 = tx * ts, y0 = ty * ts;
      const int cols = std::min(ts, g.width - x0), rows = std::min(ts, g.height - y0);
      int max_last = 0;
      for (int p = 0; p < P; ++p) {
        const int r = L.row(p), cc = L.col(p);
        if (r < rows && cc < cols) {
          const int64_t pix = (img * H + y0 + r) * W + x0 + cc;
          last[p] = p_last[pix];
          Tf[p] = p_T[pix];
          vao[p] = p_va[pix];
          for (int64_t ch = 0; ch < Ch; ++ch) vout[ch * P + p] = p_vimg[pix * Ch + ch];
          max_last = std::max(max_last, last[p]);
        } else {
          last[p] = 0;
          Tf[p] = 1.f;
          vao[p] = 0.f;
          for (int64_t ch = 0; ch < Ch; ++ch) vout[ch * P + p] = 0.f;
        }
        T[p] = Tf[p];
        lastf[p] = (float)last[p];  // exact: list lengths stay far below 2^24
      }
      std::fill(S.begin(), S.end(), 0.f);
      // Walk the list back to front from the last contributor of any pixel of the tile.
      for (int jend = begin + max_last; jend > begin; jend -= kBatch) {
        const int jstart = std::max(begin, jend - kBatch);
        const int count = jend - jstart;
        gather(bt, count, p_ids + jstart, img * N, Ch, p_m2d, p_con, p_val, p_op, p_rad, (float)x0, (float)y0,
               rows, cols, L.bw);
        // The gradients of this batch are added to scattered places: ask for them now.
        for (int k = 0; k < count; ++k) {
          const int64_t gid = img * N + p_ids[jstart + k];
          __builtin_prefetch(o_op + gid, 1);
          __builtin_prefetch(o_con + gid * 3, 1);
          __builtin_prefetch(o_m2d + gid * 2, 1);
          __builtin_prefetch(o_val + gid * Ch, 1);
        }
        if (jstart > begin) {
          const int pc = std::min(kBatch, jstart - begin);
          prefetch(pc, p_ids + jstart - pc, img * N, Ch, p_m2d, p_con, p_val, p_op, p_rad);
        }
        for (int k = count - 1; k >= 0; --k) {
          if (bt.r0[k] > bt.r1[k]) continue;
          GradSums sums{0.f, 0.f, 0.f, 0.f, 0.f, 0.f, gv.data()};
          std::fill(gv.begin(), gv.end(), 0.f);
          bool touched = false;
          const float jf = (float)(jstart - begin + k);  // its list index
          const BackwardGaussian gs{jf,       bt.o[k],  bt.a[k], bt.b[k], bt.c[k],
                                    bt.mx[k], bt.my[k], bt.vals.data() + k * Ch};
          const bool full = bt.r0[k] == 0 && bt.r1[k] == ts - 1;  // one range over its column blocks
          for (int blk = bt.b0[k]; blk <= bt.b1[k]; ++blk) {
            const int p0 = L.begin(blk, bt.r0[k]);
            const int p1 = full ? L.begin(bt.b1[k] + 1, 0) : L.begin(blk, bt.r1[k] + 1);
            tile_gaussian(px.data(), py.data(), p0, p1, gs.mx, gs.my, gs.a, gs.b, gs.c, G.data());
            touched = backward_range(tile, gs, p0, p1, sums) || touched;
            if (full) break;
          }
          if (!touched) continue;
          const int64_t gid = img * N + p_ids[jstart + k];
          add(o_op + gid, sums.o);
          add(o_con + gid * 3, sums.a);
          add(o_con + gid * 3 + 1, sums.b);
          add(o_con + gid * 3 + 2, sums.c);
          add(o_m2d + gid * 2, sums.mx);
          add(o_m2d + gid * 2 + 1, sums.my);
          for (int64_t ch = 0; ch < Ch; ++ch) add(o_val + gid * Ch + ch, gv[ch]);
        }
      }
    };
    for (int64_t k = next_item++; k < items; k = next_item++) {
      if (by_image) {
        for (int64_t t = 0; t < NT; ++t) process_tile(order[k] * NT + t);
      } else {
        process_tile(k);
      }
    }
  });
  return {g_m2d, g_con, g_val, g_op};
}

}  // namespace splatnet

TORCH_LIBRARY_IMPL(splatnet, CPU, m) {
  m.impl("rasterize_forward", &splatnet::rasterize_forward_cpu);
  m.impl("rasterize_backward", &splatnet::rasterize_backward_cpu);
}

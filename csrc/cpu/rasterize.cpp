// CPU rasterization op: tile binning, per-tile depth sort and front-to-back alpha blending of
// generic channels, and its backward (each pixel's list walked in reverse). Schemas in csrc/ext.cpp;
// input checks (splatnet/op_checks.h), tile geometry and sort keys (splatnet/tiles.h) and the
// blending math (splatnet/blend.h) are shared with the CUDA op.
//
// Layout: I = B·C images. Binning writes, for every (image, tile), the ids of the Gaussians whose
// screen box touches the tile, sorted by depth (ties by id), into one flat int32 array; tile t of
// image i owns flat_ids[tile_offsets[i·NT + t] : tile_offsets[i·NT + t + 1]].
// Blending runs over all I·NT tiles, handed to the threads one at a time. Inside a tile, per-pixel
// state lives in struct-of-arrays buffers and the loop over the tile's pixels (for one Gaussian)
// is branch-free so that GCC vectorises it (see ../shared/PERFORMANCE.md); the rows and 8-pixel
// column blocks a Gaussian can reach (from its radii; see TileLayout) bound that loop. The
// backward sums each Gaussian's gradients over a tile in registers and adds them to the outputs
// once per (Gaussian, tile) pair: plainly when each thread owns whole images, atomically when
// threads share an image.
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

// Sorted (image, tile) lists. Returns (tile_offsets [I·NT + 1] int32, flat_ids [M] int32).
std::tuple<at::Tensor, at::Tensor> bin_and_sort(const float* m2d, const int* rad, const float* dep, int64_t I,
                                                int64_t N, const TileGrid& g, const at::TensorOptions& opts) {
  const int64_t NT = num_tiles(g);
  std::vector<int64_t> offsets(I * NT + 1, 0);
  int64_t* cnt = offsets.data() + 1;
  // Counts per (image, tile); one image per task, so no races.
  parallel_dynamic(I, [&](int64_t i) {
    int64_t* c = cnt + i * NT;
    for (int64_t n = 0; n < N; ++n) {
      int x0, x1, y0, y1;
      const int64_t o = i * N + n;
      if (!tile_rect(m2d[o * 2], m2d[o * 2 + 1], rad[o * 2], rad[o * 2 + 1], g, x0, x1, y0, y1)) continue;
      for (int ty = y0; ty < y1; ++ty)
        for (int tx = x0; tx < x1; ++tx) c[ty * g.tiles_x + tx] += 1;
    }
  });
  for (int64_t t = 0; t < I * NT; ++t) offsets[t + 1] += offsets[t];
  const int64_t M = offsets[I * NT];
  TORCH_CHECK(M < (int64_t)std::numeric_limits<int32_t>::max(), kFwd, ": ", M,
              " (Gaussian, tile) pairs exceed the int32 range; render fewer cameras or Gaussians per call");
  auto tile_offsets = at::empty({I * NT + 1}, opts.dtype(at::kInt));
  auto flat_ids = at::empty({M}, opts.dtype(at::kInt));
  int* p_off = tile_offsets.data_ptr<int>();
  int* p_ids = flat_ids.data_ptr<int>();
  for (int64_t t = 0; t <= I * NT; ++t) p_off[t] = (int)offsets[t];
  std::vector<uint64_t> keys(M);
  // Fill each image's lists with (depth, id) keys, then sort its tiles while they are in cache.
  parallel_dynamic(I, [&](int64_t i) {
    std::vector<int64_t> cursor(offsets.begin() + i * NT, offsets.begin() + (i + 1) * NT);
    for (int64_t n = 0; n < N; ++n) {
      int x0, x1, y0, y1;
      const int64_t o = i * N + n;
      if (!tile_rect(m2d[o * 2], m2d[o * 2 + 1], rad[o * 2], rad[o * 2 + 1], g, x0, x1, y0, y1)) continue;
      const uint64_t key = depth_id_key(dep[o], (int32_t)n);
      for (int ty = y0; ty < y1; ++ty)
        for (int tx = x0; tx < x1; ++tx) keys[cursor[ty * g.tiles_x + tx]++] = key;
    }
    for (int64_t t = i * NT; t < (i + 1) * NT; ++t) {
      std::sort(keys.begin() + offsets[t], keys.begin() + offsets[t + 1]);
      for (int64_t j = offsets[t]; j < offsets[t + 1]; ++j) p_ids[j] = depth_id_key_id(keys[j]);
    }
  });
  return {tile_offsets, flat_ids};
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

// Tile-local copies of a batch of Gaussians (struct of arrays).
struct Batch {
  float mx[kBatch], my[kBatch], a[kBatch], b[kBatch], c[kBatch], o[kBatch];
  int r0[kBatch], r1[kBatch];  // rows reached (inclusive; empty when r0 > r1)
  int b0[kBatch], b1[kBatch];  // column blocks reached (inclusive; empty when b0 > b1)
  std::vector<float> vals;  // [kBatch, Ch]
};

void gather(Batch& bt, int count, const int* ids, int64_t img, int64_t N, int64_t Ch, const float* m2d,
            const float* con, const float* val, const float* opac, const int* rad, float ox, float oy,
            int rows, int cols, int bw) {
  for (int k = 0; k < count; ++k) {
    const int64_t o = img * N + ids[k];
    bt.mx[k] = m2d[o * 2] - ox;
    bt.my[k] = m2d[o * 2 + 1] - oy;
    bt.a[k] = con[o * 3];
    bt.b[k] = con[o * 3 + 1];
    bt.c[k] = con[o * 3 + 2];
    bt.o[k] = opac[o];
    row_range(bt.my[k], rad[o * 2 + 1], rows, bt.r0[k], bt.r1[k]);
    int c0, c1;
    row_range(bt.mx[k], rad[o * 2], cols, c0, c1);  // the same test along x
    bt.b0[k] = c0 / bw;
    bt.b1[k] = c0 > c1 ? -1 : c1 / bw;
    for (int64_t ch = 0; ch < Ch; ++ch) bt.vals[k * Ch + ch] = val[o * Ch + ch];
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
  auto binned = bin_and_sort(means2d.data_ptr<float>(), radii.data_ptr<int>(), depths.data_ptr<float>(), I, N,
                             g, opts);
  at::Tensor tile_offsets = std::get<0>(binned), flat_ids = std::get<1>(binned);
  if (I == 0 || flat_ids.numel() == 0) return {image, alpha, tile_offsets, flat_ids, last_ids, final_T};

  const float* p_m2d = means2d.data_ptr<float>();
  const float* p_con = conics.data_ptr<float>();
  const float* p_val = values.data_ptr<float>();
  const float* p_op = opac.data_ptr<float>();
  const int* p_rad = radii.data_ptr<int>();
  const int* p_off = tile_offsets.data_ptr<int>();
  const int* p_ids = flat_ids.data_ptr<int>();
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
        gather(bt, count, p_ids + j0, img, N, Ch, p_m2d, p_con, p_val, p_op, p_rad, (float)x0, (float)y0, rows,
               cols, L.bw);
        for (int k = 0; k < count; ++k) {
          if (bt.r0[k] > bt.r1[k]) continue;
          for (int blk = bt.b0[k]; blk <= bt.b1[k]; ++blk) {
            const int p0 = L.begin(blk, bt.r0[k]), p1 = L.begin(blk, bt.r1[k] + 1);
            tile_gaussian(px.data(), py.data(), p0, p1, bt.mx[k], bt.my[k], bt.a[k], bt.b[k], bt.c[k], G.data());
            const float o = bt.o[k];
            const int jj = j0 - begin + k + 1;
            float* __restrict Tp = T.data();
            float* __restrict dp = done.data();
            float* __restrict wp = w.data();
            int* __restrict lp = last.data();
            const float* __restrict Gp = G.data();
#pragma omp simd
            for (int p = p0; p < p1; ++p) {
              // blend_step's 0/1-float form of `done`: GCC if-converts and vectorises it.
              const float w = blend_step(clamp_alpha(o * Gp[p]), Tp[p], dp[p]);
              wp[p] = w;
              lp[p] = w > 0.f ? jj : lp[p];  // w > 0 exactly when blended
            }
            const float* v = bt.vals.data() + k * Ch;
            for (int64_t ch = 0; ch < Ch; ++ch) {
              const float vc = v[ch];
              float* __restrict op = out.data() + ch * P;
#pragma omp simd
              for (int p = p0; p < p1; ++p) op[p] += wp[p] * vc;
            }
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
        gather(bt, count, p_ids + jstart, img, N, Ch, p_m2d, p_con, p_val, p_op, p_rad, (float)x0, (float)y0,
               rows, cols, L.bw);
        for (int k = count - 1; k >= 0; --k) {
          if (bt.r0[k] > bt.r1[k]) continue;
          float s_o = 0.f, s_a = 0.f, s_b = 0.f, s_c = 0.f, s_mx = 0.f, s_my = 0.f;
          std::fill(gv.begin(), gv.end(), 0.f);
          bool touched = false;
          for (int blk = bt.b0[k]; blk <= bt.b1[k]; ++blk) {
            const int p0 = L.begin(blk, bt.r0[k]), p1 = L.begin(blk, bt.r1[k] + 1);
            tile_gaussian(px.data(), py.data(), p0, p1, bt.mx[k], bt.my[k], bt.a[k], bt.b[k], bt.c[k], G.data());
            const float o = bt.o[k];
            const int jj = jstart - begin + k;  // list index (0-based) of this Gaussian
            // Tile-local arrays offset to the first row this Gaussian reaches; masks are 0/1 floats
            // so that GCC if-converts and vectorises the loops.
            const int n = p1 - p0;
            float* __restrict Tp = T.data() + p0;
            float* __restrict Ap = A.data() + p0;
            float* __restrict Tip = Ti.data() + p0;
            float* __restrict Rap = Ra.data() + p0;
            float* __restrict vAp = vA.data() + p0;
            const float* __restrict Gp = G.data() + p0;
            const float* __restrict Tfp = Tf.data() + p0;
            const float* __restrict vaop = vao.data() + p0;
            const float* __restrict lp = lastf.data() + p0;
            const float* __restrict pxp = px.data() + p0;
            const float* __restrict pyp = py.data() + p0;
            const float jf = (float)jj;
            float any = 0.f;
            // The reverse step of blend.h (T_i = T_{i+1} / (1 − α_i), blend_transmittance_before),
            // written out because 1 / (1 − α_i) is computed once here and reused by three terms.
#pragma omp simd reduction(+ : any)
            for (int q = 0; q < n; ++q) {
              const float al = clamp_alpha(o * Gp[q]);
              const float contrib = (jf < lp[q]) ? (al >= kAlphaThreshold ? 1.f : 0.f) : 0.f;
              const float ra = 1.f / (1.f - al);
              const float T0 = Tp[q];
              const float Tbefore = T0 * ra;
              Ap[q] = contrib * al;
              Tip[q] = contrib * Tbefore;
              Rap[q] = contrib * ra;
              vAp[q] = contrib * (Tfp[q] * ra * vaop[q]);
              Tp[q] = contrib > 0.f ? Tbefore : T0;
              any += contrib;
            }
            if (any == 0.f) continue;
            touched = true;
            const float* v = bt.vals.data() + k * Ch;
            for (int64_t ch = 0; ch < Ch; ++ch) {
              const float vc = v[ch];
              const float* __restrict vo = vout.data() + ch * P + p0;
              float* __restrict Sp = S.data() + ch * P + p0;
              float acc = 0.f;
#pragma omp simd reduction(+ : acc)
              for (int q = 0; q < n; ++q) {
                const float wgt = Ap[q] * Tip[q];
                acc += wgt * vo[q];
                vAp[q] += (vc * Tip[q] - Sp[q] * Rap[q]) * vo[q];
                Sp[q] += vc * wgt;
              }
              gv[ch] += acc;
            }
            const float a = bt.a[k], b = bt.b[k], c = bt.c[k], mx = bt.mx[k], my = bt.my[k];
#pragma omp simd reduction(+ : s_o, s_a, s_b, s_c, s_mx, s_my)
            for (int q = 0; q < n; ++q) {
              // vA is 0 where the Gaussian is not a contributor, and so is its gradient.
              const AlphaGrad ag = blend_alpha_vjp_g(o, Gp[q], a, b, c, pxp[q] - mx, pyp[q] - my, vAp[q]);
              s_o += ag.opac;
              s_a += ag.a;
              s_b += ag.b;
              s_c += ag.c;
              s_mx += ag.mx;
              s_my += ag.my;
            }
          }
          if (!touched) continue;
          const int64_t gid = img * N + p_ids[jstart + k];
          add(o_op + gid, s_o);
          add(o_con + gid * 3, s_a);
          add(o_con + gid * 3 + 1, s_b);
          add(o_con + gid * 3 + 2, s_c);
          add(o_m2d + gid * 2, s_mx);
          add(o_m2d + gid * 2 + 1, s_my);
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

// Host-side input validation shared by the CPU and CUDA op implementations (host code only: this
// header uses ATen). Every message names the argument and the problem.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cmath>
#include <initializer_list>
#include <sstream>
#include <string>

namespace splatnet {

inline std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

// Checks dtype, device type, contiguity and shape (-1 in `shape` matches any size).
inline void check_tensor(const at::Tensor& t, const char* op, const char* name, at::ScalarType dtype,
                         c10::DeviceType device, std::initializer_list<int64_t> shape) {
  TORCH_CHECK(t.defined(), op, ": argument '", name, "' is undefined");
  TORCH_CHECK(t.device().type() == device, op, ": argument '", name, "' must be on ",
              c10::DeviceTypeName(device), ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, op, ": argument '", name, "' must be ", c10::toString(dtype),
              ", got ", t.scalar_type());
  bool ok = (int64_t)shape.size() == t.dim();
  if (ok) {
    int i = 0;
    for (int64_t s : shape) {
      if (s >= 0 && t.size(i) != s) ok = false;
      ++i;
    }
  }
  if (!ok) {
    std::ostringstream want;
    want << "[";
    int i = 0;
    for (int64_t s : shape) {
      want << (i++ ? ", " : "");
      if (s >= 0) want << s; else want << "*";
    }
    want << "]";
    TORCH_CHECK(false, op, ": argument '", name, "' must have shape ", want.str(), ", got ",
                shape_str(t.sizes()));
  }
  TORCH_CHECK(t.is_contiguous(), op, ": argument '", name, "' must be contiguous (call .contiguous())");
}

// Raises naming the argument when a CPU float32 tensor holds NaN or ±inf.
inline void check_finite_cpu(const at::Tensor& t, const char* op, const char* name) {
  const float* p = t.data_ptr<float>();
  int64_t n = t.numel();
  if (n == 0) return;
  std::atomic<int64_t> bad{-1};
  // Grain large enough that small tensors stay on the calling thread.
  at::parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
    // x · 0 is NaN iff x is NaN or ±inf; eight independent lanes so that the loop vectorises.
    float lanes[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int64_t i = lo;
    for (; i + 8 <= hi; i += 8)
      for (int l = 0; l < 8; ++l) lanes[l] += p[i + l] * 0.f;
    float acc = 0.f;
    for (; i < hi; ++i) acc += p[i] * 0.f;
    for (int l = 0; l < 8; ++l) acc += lanes[l];
    if (acc != 0.f || std::isnan(acc)) {
      for (int64_t i = lo; i < hi; ++i)
        if (!std::isfinite(p[i])) {
          bad.store(i);  // any offending index will do for the message
          break;
        }
    }
  });
  TORCH_CHECK(bad.load() < 0, op, ": argument '", name, "' contains a non-finite value (NaN or inf) at flat index ",
              bad.load());
}

}  // namespace splatnet

// Host-side checks of the CUDA op implementations (csrc/cuda/*_cuda.cpp; host code only, uses
// ATen). Complements splatnet/torch_checks.h, whose check_tensor validates dtype, device type,
// shape and contiguity.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <utility>
#include <vector>

namespace splatnet {

using NamedTensor = std::pair<const char*, const at::Tensor*>;

// All tensors on the device of the first one.
inline void check_same_device(const char* op, std::initializer_list<NamedTensor> tensors) {
  const NamedTensor& first = *tensors.begin();
  for (const NamedTensor& t : tensors)
    TORCH_CHECK(t.second->device() == first.second->device(), op, ": argument '", t.first, "' is on ",
                t.second->device(), " but '", first.first, "' is on ", first.second->device());
}

// Device-side "all finite" flags of the tensors, as one int64 tensor [len(tensors)] (1 = finite),
// still on the device: append other scalars to it so that a single copy to the host (one sync)
// reads them all, then call raise_if_not_finite on the host copy.
inline at::Tensor finite_flags(std::initializer_list<NamedTensor> tensors) {
  std::vector<at::Tensor> flags;
  for (const NamedTensor& t : tensors) flags.push_back(at::isfinite(*t.second).all().to(at::kLong).reshape({1}));
  return at::cat(flags);
}

// host_flags: a CPU int64 tensor whose first len(tensors) entries are finite_flags(tensors).
inline void raise_if_not_finite(const char* op, const at::Tensor& host_flags,
                                std::initializer_list<NamedTensor> tensors) {
  const int64_t* f = host_flags.data_ptr<int64_t>();
  int64_t i = 0;
  for (const NamedTensor& t : tensors) {
    TORCH_CHECK(f[i] != 0, op, ": argument '", t.first, "' contains a non-finite value (NaN or inf)");
    ++i;
  }
}

}  // namespace splatnet

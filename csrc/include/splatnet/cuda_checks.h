// Host-side checks of the CUDA op implementations (csrc/cuda/*_cuda.cpp; host code only, uses
// ATen and c10/cuda). Complements splatnet/torch_checks.h, whose check_tensor validates dtype,
// device type, shape and contiguity.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <utility>

#include "splatnet/cuda_launchers.h"

namespace splatnet {

using NamedTensor = std::pair<const char*, const at::Tensor*>;

// All tensors on the device of the first one.
inline void check_same_device(const char* op, std::initializer_list<NamedTensor> tensors) {
  const NamedTensor& first = *tensors.begin();
  for (const NamedTensor& t : tensors)
    TORCH_CHECK(t.second->device() == first.second->device(), op, ": argument '", t.first, "' is on ",
                t.second->device(), " but '", first.first, "' is on ", first.second->device());
}

// Device-side "all finite" flags of the tensors (float32, contiguous), one fused kernel on the
// current stream: an int64 tensor [len(tensors) + extra] whose first len(tensors) entries are 1 when
// the tensor is finite; the `extra` trailing entries are left for the caller to fill with other
// device scalars, so that a single copy to the host (one sync) reads them all. Then call
// raise_if_not_finite on the host copy.
inline at::Tensor finite_flags(std::initializer_list<NamedTensor> tensors, int64_t extra = 0) {
  TORCH_CHECK((int)tensors.size() <= cuda::kMaxFiniteArrays, "finite_flags: too many tensors");
  const at::Tensor& first = *tensors.begin()->second;
  at::Tensor flags = at::ones({(int64_t)tensors.size() + extra}, first.options().dtype(at::kLong));
  cuda::FiniteArrays arrays;
  arrays.num = 0;
  for (const NamedTensor& t : tensors) {
    arrays.ptr[arrays.num] = t.second->data_ptr<float>();
    arrays.count[arrays.num] = t.second->numel();
    ++arrays.num;
  }
  cuda::finite_flags(arrays, flags.data_ptr<int64_t>(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return flags;
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

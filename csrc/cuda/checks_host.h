// Host side of the CUDA finite-input check (kernel in checks.cu), for the CUDA ops' host code
// (csrc/cuda/*_host.cpp; uses ATen and c10/cuda, CUDA builds only). The argument checks shared with
// the CPU ops (dtype, device, shape, contiguity, same device) are in splatnet/op_checks.h.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include <initializer_list>

#include "launchers.h"
#include "splatnet/op_checks.h"

namespace splatnet {

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

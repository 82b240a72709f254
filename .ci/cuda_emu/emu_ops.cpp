// Python bindings of the CUDA ops' host functions (csrc/cuda/*_host.cpp, compiled by build.py
// against CPU tensors with the emulated kernels).
#include <torch/extension.h>

#include <tuple>

namespace splatnet {
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_forward_cuda(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, double, double, bool);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_backward_cuda(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, bool, const at::Tensor&, const at::Tensor&,
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_forward_cuda(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const at::Tensor&, int64_t, int64_t, int64_t);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_backward_cuda(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
    int64_t, int64_t, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const at::Tensor&, const at::Tensor&);
}  // namespace splatnet

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("project_forward", &splatnet::project_forward_cuda);
  m.def("project_backward", &splatnet::project_backward_cuda);
  m.def("rasterize_forward", &splatnet::rasterize_forward_cuda);
  m.def("rasterize_backward", &splatnet::rasterize_backward_cuda);
}

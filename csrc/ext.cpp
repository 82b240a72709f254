// splatnet._C: the one torch extension. Ops live in the `splatnet` namespace of torch.ops. This file
// owns the library: every op's schema (below), the build-information op and the Python module
// object. The back ends only register implementations of these schemas, in
// TORCH_LIBRARY_IMPL(splatnet, CPU / CUDA, m) blocks: csrc/cpu/*.cpp and csrc/cuda/*_host.cpp.
// The fake (meta) implementations and autograd are registered in Python (splatnet/render/_ops.py).
#include <Python.h>
#include <torch/library.h>

#include <string>

#ifndef SPLATNET_BUILD_NO_CUDA_REASON
#define SPLATNET_BUILD_NO_CUDA_REASON "unknown"
#endif

namespace splatnet {

// A JSON string: whether CUDA kernels were compiled in, and if not, why.
std::string build_info() {
#ifdef WITH_CUDA
  return std::string("{\"cuda\": true, \"reason\": \"\"}");
#else
  return std::string("{\"cuda\": false, \"reason\": \"") + SPLATNET_BUILD_NO_CUDA_REASON + "\"}";
#endif
}

}  // namespace splatnet

TORCH_LIBRARY(splatnet, m) {
  m.def("build_info() -> str", &splatnet::build_info);

  // EWA projection + SH colour of B scenes × N Gaussians into B × C cameras (csrc/cpu/projection.cpp,
  // csrc/cuda/projection_host.cpp).
  m.def(
      "project_forward(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor sh, "
      "Tensor viewmats, Tensor Ks, int width, int height, int sh_degree, float near, float far, "
      "bool antialiased) -> (Tensor means2d, Tensor conics, Tensor depths, Tensor radii, Tensor opac, "
      "Tensor colors)");
  m.def(
      "project_backward(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor sh, "
      "Tensor viewmats, Tensor Ks, int width, int height, int sh_degree, bool antialiased, "
      "Tensor radii, Tensor v_means2d, Tensor v_conics, Tensor v_depths, Tensor v_opac, "
      "Tensor v_colors) -> (Tensor v_means, Tensor v_quats, Tensor v_scales, Tensor v_opacities, "
      "Tensor v_sh)");

  // Tile binning, per-tile depth sort and front-to-back blending of B × C images
  // (csrc/cpu/rasterize.cpp, csrc/cuda/rasterize_host.cpp).
  m.def(
      "rasterize_forward(Tensor means2d, Tensor conics, Tensor values, Tensor opac, Tensor depths, "
      "Tensor radii, int width, int height, int tile_size) -> (Tensor image, Tensor alpha, "
      "Tensor tile_offsets, Tensor flat_ids, Tensor last_ids, Tensor final_T)");
  m.def(
      "rasterize_backward(Tensor means2d, Tensor conics, Tensor values, Tensor opac, Tensor radii, "
      "int width, int height, int tile_size, Tensor tile_offsets, Tensor flat_ids, Tensor last_ids, "
      "Tensor final_T, Tensor v_image, Tensor v_alpha) -> (Tensor v_means2d, Tensor v_conics, "
      "Tensor v_values, Tensor v_opac)");
}

// Importing splatnet._C runs the static registrations above; the module itself is empty.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

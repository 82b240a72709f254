// splatnet._C: the one torch extension. Ops live in the `splatnet` namespace of torch.ops and are
// registered by the TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL blocks of each source file; this
// file owns the library definition, the Python module object and the build-information op.
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
}

// Importing splatnet._C runs the static registrations above; the module itself is empty.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

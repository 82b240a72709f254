"""Build splatnet and its torch extension ``splatnet._C``.

C++ CPU sources (``csrc/*.cpp``, ``csrc/cpu/*.cpp``) are always built. CUDA sources
(``csrc/cuda/*.cu``, ``csrc/cuda/*.cpp``) are added when a CUDA toolkit *and* a CUDA build of
torch are present, or when ``SPLATNET_FORCE_CUDA=1``; ``SPLATNET_NO_CUDA=1`` skips them.
``TORCH_CUDA_ARCH_LIST`` is honoured by torch's build helper.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _extension():
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension

    def rel(pattern: str) -> list[str]:
        return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))

    cpu_sources = rel("csrc/*.cpp") + rel("csrc/cpu/*.cpp")
    cuda_sources = rel("csrc/cuda/*.cu") + rel("csrc/cuda/*.cpp")

    if _flag("SPLATNET_NO_CUDA"):
        with_cuda, why = False, "SPLATNET_NO_CUDA=1"
    elif _flag("SPLATNET_FORCE_CUDA"):
        with_cuda, why = True, "SPLATNET_FORCE_CUDA=1"
    elif CUDA_HOME is None:
        with_cuda, why = False, "no CUDA toolkit found (set CUDA_HOME)"
    elif torch.version.cuda is None:
        with_cuda, why = False, f"torch {torch.__version__} is a CPU-only build"
    else:
        with_cuda, why = True, f"CUDA toolkit at {CUDA_HOME}, torch CUDA {torch.version.cuda}"
    print(f"splatnet: building {'with' if with_cuda else 'without'} CUDA ({why})", file=sys.stderr)

    cxx = ["-O3", "-std=c++20", "-fopenmp"]
    if not _flag("SPLATNET_PORTABLE"):
        # The CPU blend loop relies on vectorised expf (see shared PERFORMANCE.md).
        cxx += ["-march=native"]
    define_macros = [("SPLATNET_BUILD_NO_CUDA_REASON", f'"{why}"')] if not with_cuda else []
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    extra_link_args = ["-fopenmp"]
    if with_cuda:
        nvcc = ["-O3", "-std=c++20", "--use_fast_math", "--expt-relaxed-constexpr"]
        return CUDAExtension(
            "splatnet._C",
            cpu_sources + cuda_sources,
            include_dirs=include_dirs,
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx, "nvcc": nvcc},
            extra_link_args=extra_link_args,
        )
    return CppExtension(
        "splatnet._C",
        cpu_sources,
        include_dirs=include_dirs,
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx},
        extra_link_args=extra_link_args,
    )


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    return {"build_ext": BuildExtension.with_options(use_ninja=True)}


setup(
    packages=find_packages(include=["splatnet", "splatnet.*"]),
    ext_modules=[_extension()],
    cmdclass=_cmdclass(),
    include_package_data=True,
)

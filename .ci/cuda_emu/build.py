"""Build the CUDA ops of csrc/cuda/ as a CPU extension that runs the kernels in an emulator.

The .cu sources and the host glue (*_host.cpp) are compiled by g++ with three mechanical
rewrites, so what runs is the code nvcc compiles, not a re-implementation:

- ``kernel<<<grid, block, shmem, stream>>>(args)`` → ``emu::launch(kernel, grid, block, shmem,
  stream)(args)``, and ``extern __shared__ T name[];`` → a pointer to the block's emulated
  dynamic shared memory (kernels);
- ``#include <c10/cuda/...>`` → a shim (shim/c10/cuda/ also shadows the real headers: guard,
  stream, error checks), ``c10::DeviceType::CUDA`` → ``CPU`` and the
  ``TORCH_LIBRARY_IMPL(splatnet, CUDA, m)`` block → an unused function (glue).

The runtime (shim/emu_runtime.h) says what the emulation does and does not cover.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CUDA_DIR = ROOT / "csrc" / "cuda"

_LAUNCH = re.compile(r"([A-Za-z_]\w*(?:<[^<>;]*>)?)<<<(.*?)>>>\(", re.S)
_EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(\w+)\s+(\w+)\[\];")


def rewrite_kernel(src: str, path: Path) -> str:
    src, n = _LAUNCH.subn(r"emu::launch(\1, \2)(", src)
    src = _EXTERN_SHARED.sub(r"\1* \2 = reinterpret_cast<\1*>(emu::dynamic_shared());", src)
    return f'#include "emu_runtime.h"\n#line 1 "{path}"\n' + src


def rewrite_glue(src: str, path: Path) -> str:
    src = re.sub(r"#include <c10/cuda/[^>]+>\n", "", src)
    src = src.replace("c10::DeviceType::CUDA", "c10::DeviceType::CPU")
    src, n = re.subn(r"TORCH_LIBRARY_IMPL\(splatnet, CUDA, m\)",
                     "[[maybe_unused]] static void emu_unused_registration(torch::Library& m)", src)
    assert n == 1, f"{path}: expected one TORCH_LIBRARY_IMPL(splatnet, CUDA, m) block"
    return f'#define WITH_CUDA 1\n#include "emu_c10_cuda.h"\n#line 1 "{path}"\n' + src


def load(verbose: bool = False):
    from torch.utils.cpp_extension import load as load_ext

    out = HERE / "build"
    out.mkdir(exist_ok=True)
    sources = [str(HERE / "emu_ops.cpp")]
    for cu in sorted(CUDA_DIR.glob("*.cu")):
        dst = out / (cu.stem + "_cu.cpp")
        text = rewrite_kernel(cu.read_text(), cu)
        if not dst.exists() or dst.read_text() != text:
            dst.write_text(text)
        sources.append(str(dst))
    for cpp in sorted(CUDA_DIR.glob("*.cpp")):
        dst = out / (cpp.stem + "_glue.cpp")
        text = rewrite_glue(cpp.read_text(), cpp)
        if not dst.exists() or dst.read_text() != text:
            dst.write_text(text)
        sources.append(str(dst))
    return load_ext(
        name="splatnet_cuda_emu",
        sources=sources,
        extra_include_paths=[str(HERE / "shim"), str(ROOT / "csrc" / "include"), str(CUDA_DIR)],
        extra_cflags=["-O2", "-std=c++17", "-U_FORTIFY_SOURCE", "-w"],
        build_directory=str(out),
        verbose=verbose,
    )


if __name__ == "__main__":
    load(verbose=True)
    print("built")

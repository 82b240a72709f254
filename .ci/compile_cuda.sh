#!/usr/bin/env bash
# Compile check of the CUDA sources, for machines without a GPU (CI).
#
# 1. Every csrc/**/*.cu is compiled with nvcc (-c, C++17, the nvcc flags setup.py uses) for sm_80
#    and sm_90 into a temporary directory; any error fails the script. The .cu files include only
#    csrc/include, their sibling headers in csrc/cuda/ and the CUDA toolkit (no torch, no Python
#    headers).
# 2. The torch glue csrc/cuda/*_host.cpp (compiled only in CUDA builds, -DWITH_CUDA) is syntax-checked
#    with g++ against torch's headers and the CUDA toolkit's. A CPU-only torch wheel ships the
#    c10/cuda headers but not the generated c10/cuda/impl/cuda_cmake_macros.h, so a stub of it is
#    put on the include path (it only configures the export macros of the c10_cuda library).
#
# 3. The kernels and the host glue run in a CPU emulator (.ci/cuda_emu: fibers with real block and
#    warp barriers, a CUB shim) and are compared with the CPU ops (~4 min on 2 cores the first
#    time; SPLATNET_SKIP_CUDA_EMU=1 skips it).
#
# Exits 0 with a message when nvcc is absent. Environment: PYTHON (default .venv/bin/python, else
# python3) to find torch's include dirs; CUDA_HOME (default: from nvcc's location).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvcc >/dev/null 2>&1; then
  echo "compile_cuda: nvcc not found; skipping the CUDA compile check"
  exit 0
fi

NVCC_FLAGS=(-O3 -std=c++17 --use_fast_math --expt-relaxed-constexpr -Werror all-warnings)
ARCHS=(-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

mapfile -t CU_FILES < <(find csrc -name '*.cu' | sort)
if [ "${#CU_FILES[@]}" -eq 0 ]; then
  echo "compile_cuda: no .cu files under csrc/" >&2
  exit 1
fi

echo "compile_cuda: $(nvcc --version | tail -n 1)"
for f in "${CU_FILES[@]}"; do
  obj="$TMP/$(echo "$f" | tr '/' '_').o"
  echo "  nvcc sm_80 + sm_90  $f"
  nvcc "${NVCC_FLAGS[@]}" "${ARCHS[@]}" -I csrc/include -c "$f" -o "$obj"
done

# ---- host glue: g++ -fsyntax-only -DWITH_CUDA
shopt -s nullglob
CPP_FILES=(csrc/cuda/*.cpp)
if [ "${#CPP_FILES[@]}" -eq 0 ]; then
  echo "compile_cuda: ${#CU_FILES[@]} .cu file(s) compiled; no host .cpp files"
  exit 0
fi
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! TORCH_INC=$("$PY" -c 'import torch.utils.cpp_extension as c; print(" ".join(c.include_paths()))' 2>/dev/null); then
  echo "compile_cuda: ${#CU_FILES[@]} .cu file(s) compiled; torch not importable with $PY, host .cpp files NOT checked" >&2
  exit 1
fi
PY_INC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
CUDA_INC="$CUDA_HOME/include"
[ -f "$CUDA_INC/cuda_runtime_api.h" ] || CUDA_INC=/usr/local/cuda/include

INC=(-I csrc/include -I "$PY_INC" -I "$CUDA_INC")
for d in $TORCH_INC; do INC+=(-I "$d"); done
first_torch_inc=${TORCH_INC%% *}
if [ ! -f "$first_torch_inc/c10/cuda/impl/cuda_cmake_macros.h" ]; then
  mkdir -p "$TMP/stub/c10/cuda/impl"
  echo '#pragma once  // stub for the syntax check (see .ci/compile_cuda.sh)' \
    >"$TMP/stub/c10/cuda/impl/cuda_cmake_macros.h"
  INC+=(-I "$TMP/stub")
fi
for f in "${CPP_FILES[@]}"; do
  echo "  g++ -fsyntax-only -DWITH_CUDA  $f"
  # -w: torch's own headers warn under -std=c++17; errors still fail.
  g++ -fsyntax-only -std=c++17 -DWITH_CUDA -w "${INC[@]}" "$f"
done
echo "compile_cuda: OK (${#CU_FILES[@]} .cu file(s) for sm_80 and sm_90, ${#CPP_FILES[@]} host file(s) syntax-checked)"

if [ "${SPLATNET_SKIP_CUDA_EMU:-0}" = "1" ]; then
  echo "compile_cuda: emulator check skipped (SPLATNET_SKIP_CUDA_EMU=1)"
  exit 0
fi
echo "compile_cuda: running the kernels in the CPU emulator against the CPU ops"
"$PY" -m pytest .ci/cuda_emu/test_emu.py -q -p no:cacheprovider

// A tiny CUDA execution emulator for checking splatnet's .cu kernels on a machine without a GPU.
//
// The kernel source is compiled by g++ unchanged except for the launch syntax and dynamic shared
// memory (rewritten by build.py). Each thread block runs its threads as cooperative fibers on one
// OS thread; __syncthreads / __syncthreads_count and the warp collectives (__shfl_*_sync,
// __any_sync) are real barriers over the block / the 32 lanes of a warp, so a kernel that reads
// shared memory before the barrier that publishes it, or whose lanes diverge around a collective,
// deadlocks or computes garbage here too (a deadlock aborts with a message). A thread that returns
// counts as arrived at every later barrier, as on the GPU. Blocks run one after another, so
// data races between blocks and the memory model are NOT exercised; nor are fast-math
// intrinsics (__expf is std::exp here), launch limits, registers or shared-memory capacity.
#pragma once

#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "emu_runtime_api.h"

// ------------------------------------------------------------------------------ CUDA surface
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

namespace emu {

constexpr int kWarp = 32;
constexpr size_t kStackBytes = 256 * 1024;

enum class State { Runnable, WaitBlock, WaitWarp, Done };

struct Fiber {
  jmp_buf jb;
  ucontext_t uc;
  std::vector<char> stack;
  State state = State::Runnable;
  bool started = false;
  unsigned int tx = 0, ty = 0, tz = 0;
  int lane = 0, warp = 0;
  unsigned long long warp_ops = 0;  // parity selects the double-buffered collective slots
};

struct WarpSlots {
  long long v[2][kWarp];
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<WarpSlots> warp_slots;
  std::vector<char> shared;
  int count_acc = 0, count_result = 0;
  std::function<void()> body;
};

inline Block& block() {
  static Block b;
  return b;
}
inline jmp_buf& scheduler_jb() {
  static jmp_buf jb;
  return jb;
}
inline Fiber*& current() {
  static Fiber* f = nullptr;
  return f;
}

}  // namespace emu

// The CUDA built-in variables; set by the scheduler before it resumes a fiber.
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace emu {

inline void yield_to_scheduler() {
  Fiber* f = current();
  if (!_setjmp(f->jb)) _longjmp(scheduler_jb(), 1);
}

inline void fiber_entry() {
  current()->state = State::Runnable;
  block().body();
  current()->state = State::Done;
  _longjmp(scheduler_jb(), 1);
}

inline void resume(Fiber& f) {
  current() = &f;
  threadIdx = {f.tx, f.ty, f.tz};
  if (!_setjmp(scheduler_jb())) {
    if (!f.started) {
      f.started = true;
      getcontext(&f.uc);
      f.uc.uc_stack.ss_sp = f.stack.data();
      f.uc.uc_stack.ss_size = f.stack.size();
      f.uc.uc_link = nullptr;
      makecontext(&f.uc, fiber_entry, 0);
      setcontext(&f.uc);
    } else {
      _longjmp(f.jb, 1);
    }
  }
}

// Runs one block to completion.
inline void run_block() {
  Block& b = block();
  const int n = (int)b.fibers.size();
  const int nwarps = (n + kWarp - 1) / kWarp;
  for (;;) {
    bool ran = false;
    for (Fiber& f : b.fibers)
      if (f.state == State::Runnable) {
        resume(f);
        ran = true;
      }
    if (ran) continue;
    int done = 0, wait_block = 0;
    for (Fiber& f : b.fibers) {
      done += f.state == State::Done;
      wait_block += f.state == State::WaitBlock;
    }
    if (done == n) return;
    bool released = false;
    // A warp barrier releases when every lane of the warp that has not exited waits on it.
    for (int w = 0; w < nwarps; ++w) {
      int lanes = 0, waiting = 0, exited = 0;
      for (int i = w * kWarp; i < std::min(n, (w + 1) * kWarp); ++i) {
        ++lanes;
        waiting += b.fibers[i].state == State::WaitWarp;
        exited += b.fibers[i].state == State::Done;
      }
      if (waiting > 0 && waiting + exited == lanes) {
        for (int i = w * kWarp; i < std::min(n, (w + 1) * kWarp); ++i)
          if (b.fibers[i].state == State::WaitWarp) b.fibers[i].state = State::Runnable;
        released = true;
      }
    }
    if (released) continue;
    if (wait_block > 0 && wait_block + done == n) {
      b.count_result = b.count_acc;
      b.count_acc = 0;
      for (Fiber& f : b.fibers)
        if (f.state == State::WaitBlock) f.state = State::Runnable;
      continue;
    }
    std::fprintf(stderr, "emu: deadlock in block (%u, %u, %u): %d threads wait at __syncthreads, %d exited, "
                 "the rest at a warp collective\n", blockIdx.x, blockIdx.y, blockIdx.z, wait_block, done);
    std::abort();
  }
}

inline int block_barrier(int contribution) {
  block().count_acc += contribution;
  current()->state = State::WaitBlock;
  yield_to_scheduler();
  return block().count_result;
}

// Publishes v in this lane's slot, waits for the whole warp, then returns the slots' values.
inline const long long* warp_exchange(long long v) {
  Fiber* f = current();
  WarpSlots& s = block().warp_slots[f->warp];
  long long* slots = s.v[f->warp_ops & 1];
  ++f->warp_ops;
  slots[f->lane] = v;
  f->state = State::WaitWarp;
  yield_to_scheduler();
  return slots;
}

template <typename T>
inline long long to_bits(T v) {
  long long r = 0;
  std::memcpy(&r, &v, sizeof(T));
  return r;
}
template <typename T>
inline T from_bits(long long r) {
  T v;
  std::memcpy(&v, &r, sizeof(T));
  return v;
}

inline void* dynamic_shared() { return block().shared.data(); }

template <typename... Params>
struct Launch {
  void (*kernel)(Params...);
  dim3 grid, threads;
  size_t shmem;

  template <typename... Args>
  void operator()(Args&&... args) const {
    Block& b = block();
    const int n = (int)(threads.x * threads.y * threads.z);
    if (n <= 0 || n > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
      std::fprintf(stderr, "emu: invalid launch configuration\n");
      std::abort();
    }
    b.fibers.resize(n);
    b.warp_slots.assign((n + kWarp - 1) / kWarp, WarpSlots{});
    b.shared.assign(std::max<size_t>(shmem, 16) + 64, 0);
    auto kern = kernel;
    std::tuple<std::decay_t<Args>...> packed(std::forward<Args>(args)...);
    b.body = [kern, &packed]() { std::apply([kern](auto&... a) { kern(a...); }, packed); };
    blockDim = threads;
    gridDim = grid;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
      for (unsigned int by = 0; by < grid.y; ++by)
        for (unsigned int bx = 0; bx < grid.x; ++bx) {
          blockIdx = {bx, by, bz};
          std::fill(b.shared.begin(), b.shared.end(), (char)0x7f);  // garbage, as on the GPU
          b.count_acc = b.count_result = 0;
          for (int i = 0; i < n; ++i) {
            Fiber& f = b.fibers[i];
            if (f.stack.size() != kStackBytes) f.stack.resize(kStackBytes);
            f.state = State::Runnable;
            f.started = false;
            f.tx = i % threads.x;
            f.ty = (i / threads.x) % threads.y;
            f.tz = i / (threads.x * threads.y);
            f.lane = i % kWarp;
            f.warp = i / kWarp;
            f.warp_ops = 0;
          }
          run_block();
        }
  }
};

template <typename... Params>
inline Launch<Params...> launch(void (*kernel)(Params...), dim3 grid, dim3 threads, size_t shmem = 0,
                                cudaStream_t = nullptr) {
  return Launch<Params...>{kernel, grid, threads, shmem};
}

}  // namespace emu

// ------------------------------------------------------------------------------ device API
inline void __syncthreads() { emu::block_barrier(0); }
inline int __syncthreads_count(int pred) { return emu::block_barrier(pred ? 1 : 0); }

inline int __any_sync(unsigned int mask, int pred) {
  if (mask != 0xffffffffu) std::abort();  // the kernels only use full warps
  const long long* s = emu::warp_exchange(pred ? 1 : 0);
  for (int i = 0; i < emu::kWarp; ++i)
    if (s[i]) return 1;
  return 0;
}

template <typename T>
inline T __shfl_down_sync(unsigned int mask, T v, unsigned int delta) {
  if (mask != 0xffffffffu) std::abort();
  const int lane = emu::current()->lane;
  const long long* s = emu::warp_exchange(emu::to_bits(v));
  const int src = lane + (int)delta;
  return src < emu::kWarp ? emu::from_bits<T>(s[src]) : v;
}

template <typename T>
inline T __shfl_xor_sync(unsigned int mask, T v, int lane_mask) {
  if (mask != 0xffffffffu) std::abort();
  const int lane = emu::current()->lane;
  const long long* s = emu::warp_exchange(emu::to_bits(v));
  return emu::from_bits<T>(s[lane ^ lane_mask]);
}

inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline int atomicMax(int* p, int v) {
  const int old = *p;
  *p = std::max(old, v);
  return old;
}
using std::max;
using std::min;

inline float __expf(float x) { return std::exp(x); }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline unsigned int __float_as_uint(float f) { return emu::from_bits<unsigned int>(emu::to_bits(f)); }

// Kernel translation units see the device side of SPLATNET_HD code.
#define __CUDA_ARCH__ 800

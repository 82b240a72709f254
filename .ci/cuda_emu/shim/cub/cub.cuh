// Emulator shim of the two CUB algorithms splatnet uses, with CUB's calling conventions (a
// temp_bytes query when d_temp_storage is null, DoubleBuffer selectors). The radix sort honours
// [begin_bit, end_bit) like CUB: bits outside are ignored, so a too-small end bit shows up as a
// wrong order. It is stable, like CUB's.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "emu_runtime.h"

namespace cub {

template <typename T>
struct DoubleBuffer {
  T* d_buffers[2];
  int selector;
  DoubleBuffer(T* current, T* alternate) : d_buffers{current, alternate}, selector(0) {}
  T* Current() { return d_buffers[selector]; }
  T* Alternate() { return d_buffers[selector ^ 1]; }
};

struct DeviceScan {
  template <typename In, typename Out, typename NumItems>
  static cudaError_t InclusiveSum(void* temp, size_t& temp_bytes, In in, Out out, NumItems n, cudaStream_t = nullptr) {
    if (temp == nullptr) {
      temp_bytes = 64;
      return cudaSuccess;
    }
    std::inclusive_scan(in, in + n, out);
    return cudaSuccess;
  }
};

struct DeviceRadixSort {
  template <typename K, typename V, typename NumItems>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, DoubleBuffer<K>& keys, DoubleBuffer<V>& values,
                               NumItems n, int begin_bit = 0, int end_bit = sizeof(K) * 8, cudaStream_t = nullptr) {
    if (temp == nullptr) {
      temp_bytes = 128;
      return cudaSuccess;
    }
    const unsigned long long hi = end_bit >= 64 ? ~0ull : ((1ull << end_bit) - 1);
    const unsigned long long lo = begin_bit <= 0 ? ~0ull : ~((1ull << begin_bit) - 1);
    const unsigned long long mask = hi & lo;
    std::vector<long long> order(n);
    std::iota(order.begin(), order.end(), 0);
    K* k = keys.Current();
    V* v = values.Current();
    std::stable_sort(order.begin(), order.end(), [&](long long a, long long b) {
      return ((unsigned long long)k[a] & mask) < ((unsigned long long)k[b] & mask);
    });
    K* ko = keys.Alternate();
    V* vo = values.Alternate();
    for (long long i = 0; i < (long long)n; ++i) {
      ko[i] = k[order[i]];
      vo[i] = v[order[i]];
    }
    keys.selector ^= 1;
    values.selector ^= 1;
    return cudaSuccess;
  }
};

}  // namespace cub

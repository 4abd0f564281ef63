// Block-wide bitonic sort of slot indices into an order and its inverse, shared by the semaim CUDA kernels.
// The comparison is the op's core.h order; the slot array may live in shared or global memory.
#pragma once
#include <cstdint>

namespace semaim::kernels {

// Largest L whose slots (and keys) a block sorts in shared memory; above it the slots go to global scratch.
constexpr int64_t kSharedSortMaxL = 4096;

// Smallest power of two >= n (n >= 1): the sort's slot count.
inline int next_pow2(int64_t n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Sorts slots idx[0, p) (p = next_pow2(l)) so the real slots [0, l) come first in before's order, a strict
// total order on them, then writes order[i] = idx[i] and inverse[idx[i]] = i for i < l. Every thread of the
// block calls it. Work: p*log2(p)*(log2(p)+1)/4 comparisons, spread over the block's threads.
template <typename Before>
__device__ void sort_into_order(int* idx, int p, int l, const Before& before, int64_t* order,
                                int64_t* inverse) {
  for (int i = threadIdx.x; i < p; i += blockDim.x) idx[i] = i;
  __syncthreads();
  const auto less = [&](int a, int b) { return a < l && b < l ? before(a, b) : a < b; };  // padding last
  for (int k = 2; k <= p; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < p; i += blockDim.x) {
        const int partner = i ^ j;
        if (partner > i) {
          const int a = idx[i], b = idx[partner];
          if (less(b, a) == ((i & k) == 0)) {  // ascending where bit k of i is clear
            idx[i] = b;
            idx[partner] = a;
          }
        }
      }
      __syncthreads();
    }
  }
  for (int i = threadIdx.x; i < l; i += blockDim.x) {
    const int s = idx[i];
    order[i] = s;
    inverse[s] = i;
  }
}

}  // namespace semaim::kernels

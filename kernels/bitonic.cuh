// Block-wide bitonic sort of slot indices, shared by the semaim CUDA kernels (device code only).
// The comparison is the op's core.h order; the slot array may live in shared or global memory.
#pragma once

namespace semaim::kernels {

// Sorts idx[0, p) (p a power of two) so that before(idx[i], idx[i+1]) for every i; before must be a strict
// total order. Every thread of the block must call it; the caller has synchronized after filling idx.
// Work: p*log2(p)*(log2(p)+1)/4 comparisons, spread over the block's threads.
template <typename Before>
__device__ void bitonic_sort(int* idx, int p, const Before& before) {
  for (int k = 2; k <= p; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < p; i += blockDim.x) {
        const int partner = i ^ j;
        if (partner > i) {
          const int a = idx[i], b = idx[partner];
          const bool ascending = (i & k) == 0;
          if (before(b, a) == ascending) {
            idx[i] = b;
            idx[partner] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

}  // namespace semaim::kernels

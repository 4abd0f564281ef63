// Host+device math of the fused `parts` ordering (method.md §5), shared by parts_order_cpu.cpp and
// parts_order.cu; reference: src/ordering/parts.cpp parts_keys. Every sum runs in index order in fp32.
#pragma once
#include <c10/macros/Macros.h>

#include <cstdint>

#include "kernels/order_from_keys/core.h"
#include "kernels/semantic_order/core.h"

namespace semaim::kernels {

// acc + a*b rounded twice, as the ATen reference's `acc + a * b`: no FMA contraction (nvcc contracts by
// default, so the device spells the roundings out).
C10_HOST_DEVICE inline float mul_add_rn(float acc, float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(acc, __fmul_rn(a, b));
#else
  const float p = a * b;
  return acc + p;
#endif
}

// sum_i a[i]*b[i] in index order (stride sa, sb between elements).
template <typename I>
C10_HOST_DEVICE inline float dot_seq(const float* a, I sa, const float* b, I sb, I d) {
  float acc = 0.f;
  for (I i = 0; i < d; ++i) acc = mul_add_rn(acc, a[i * sa], b[i * sb]);
  return acc;
}

// First centroid of k-means: patch floor(c*L/k), spread evenly in index order.
C10_HOST_DEVICE inline int64_t parts_init_patch(int64_t c, int64_t l, int64_t k) { return c * l / k; }

// Part o ranks before part c: higher mean cosine to cls, equal means by lower part index (NaN never beats).
C10_HOST_DEVICE inline bool part_beats(float mean_o, int64_t o, float mean_c, int64_t c) {
  return mean_o > mean_c || (mean_o == mean_c && o < c);
}

// The parts total order of patches a, b: part rank, squared grid distance from the part's seed, noise,
// then index (rank_keys((rank, distance), noise) in the reference).
template <typename noise_t>
C10_HOST_DEVICE inline bool parts_before(int64_t ra, int64_t da, noise_t na, int64_t ia, int64_t rb, int64_t db,
                                         noise_t nb, int64_t ib) {
  if (ra != rb) return ra < rb;
  if (da != db) return da < db;
  return key_before(na, ia, nb, ib);
}

}  // namespace semaim::kernels

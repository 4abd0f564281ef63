// Host+device math of the fused semantic permutation (method.md §6 steps 2-5) for semantic_order.cu and
// semantic_order_cpu.cpp; reference: src/ordering cls_similarity, semantic_center, grid_distance, rank_keys.
#pragma once
#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

#include "kernels/order_from_keys/core.h"

namespace semaim::kernels {

// F.normalize's eps (cls_similarity): an all-zero token has similarity 0, not NaN.
constexpr float kNormEps = 1e-12f;

template <typename acc_t>
C10_HOST_DEVICE inline acc_t norm_clamped(acc_t sumsq) {
#ifdef __CUDA_ARCH__
  const acc_t n = sqrt(sumsq);  // IEEE-rounded for float and double unless built with fast math
#else
  const acc_t n = std::sqrt(sumsq);
#endif
  return n > acc_t(kNormEps) ? n : acc_t(kNormEps);
}

// Running sums of one patch p against the anchor a: dot(p, a) and |p|^2, in acc_t (fp32 for fp32/bf16/fp16
// tokens); cos() is the patch's cosine to the anchor given the anchor's |a|^2.
template <typename acc_t>
struct CosAcc {
  acc_t dot = 0, pp = 0;
  C10_HOST_DEVICE void add(acc_t p, acc_t a) {
    dot += p * a;
    pp += p * p;
  }
  C10_HOST_DEVICE void add(const CosAcc& o) {
    dot += o.dot;
    pp += o.pp;
  }
  C10_HOST_DEVICE acc_t cos(acc_t aa) const { return dot / (norm_clamped(pp) * norm_clamped(aa)); }
};

// at::argmax's rule: NaN beats every number, equal values go to the lower index.
// true iff candidate (va, ia) beats the current best (vb, ib).
template <typename acc_t, typename I>
C10_HOST_DEVICE inline bool argmax_beats(acc_t va, I ia, acc_t vb, I ib) {
  const bool na = va != va, nb = vb != vb;
  if (na || nb) return na && (!nb || ia < ib);
  return va > vb || (va == vb && ia < ib);
}

// Exact squared euclidean grid distance between patches i and c (row-major, gw columns): equal distances
// are equal integers, so rings tie exactly as in the float64 reference.
// I is the index type: int64_t on the host, int on the device (64-bit division is slow there).
template <typename I>
C10_HOST_DEVICE inline int64_t grid_d2(I i, I c, I gw) {
  const I dr = i / gw - c / gw, dc = i % gw - c % gw;
  return static_cast<int64_t>(dr) * dr + static_cast<int64_t>(dc) * dc;
}

// The semantic total order: grid distance from the center, then noise, then index (rank_keys on
// (distance, noise) in the reference).
template <typename noise_t, typename I>
C10_HOST_DEVICE inline bool semantic_before(I ia, I ib, const noise_t* noise, I center, I gw) {
  const int64_t da = grid_d2<I>(ia, center, gw), db = grid_d2<I>(ib, center, gw);
  if (da != db) return da < db;
  return key_before(noise[ia], ia, noise[ib], ib);
}

}  // namespace semaim::kernels

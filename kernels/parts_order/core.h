// Host+device math of the fused `parts` ordering (method.md §5): the whole per-image k-means, run by
// parts_order.cu with a CUDA block as the team and by parts_order_cpu.cpp with one thread per image.
// Reference: src/ordering/parts.cpp parts_keys. Every sum is one thread's loop in index order in fp32, as the
// reference's, so twin, kernel and reference agree bit for bit.
#pragma once
#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

#include "kernels/order_from_keys/core.h"
#include "kernels/semantic_order/core.h"

namespace semaim::kernels {

// The threads working on one image: a CUDA block, or one CPU thread (rank 0 of 1).
struct Team {
  int64_t rank, size;
  C10_HOST_DEVICE void sync() const {
#ifdef __CUDA_ARCH__
    __syncthreads();
#endif
  }
};

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

// sum_i a[i]*b[i] in index order. a, b: (d) -> scalar
C10_HOST_DEVICE inline float dot_seq(const float* a, const float* b, int64_t d) {
  float acc = 0.f;
  for (int64_t i = 0; i < d; ++i) acc = mul_add_rn(acc, a[i], b[i]);
  return acc;
}

// One image's scratch, carved from parts_floats() floats and parts_ints() int64s by parts_work().
struct PartsWork {
  float* xn;      // (L+1, D) unit tokens, row 0 = cls
  float* m;       // (k, D) centroids: sums of their members' unit rows
  float* cn;      // (k, D) unit centroids
  float* s;       // (L) cosine of each patch to cls
  float* mean;    // (k) mean cosine to cls per part, -inf if empty
  int64_t* a;     // (L) part of each patch
  int64_t* cnt;   // (k) members per part
  int64_t* seed;  // (k) each part's member most similar to cls
  int64_t* rank;  // (k) rank of each part
};
C10_HOST_DEVICE inline int64_t parts_floats(int64_t l, int64_t d, int64_t k) {
  return (l + 1 + 2 * k) * d + l + k;
}
C10_HOST_DEVICE inline int64_t parts_ints(int64_t l, int64_t k) { return l + 3 * k; }
C10_HOST_DEVICE inline PartsWork parts_work(float* f, int64_t* i, int64_t l, int64_t d, int64_t k) {
  float* m = f + (l + 1) * d;
  return {f, m, m + k * d, m + 2 * k * d, m + 2 * k * d + l, i, i + l, i + l + k, i + l + 2 * k};
}

// Rows of x (rows, D) divided by max(|row|, eps) in place, a thread per row.
C10_HOST_DEVICE inline void normalize_rows(const Team& t, float* x, int64_t rows, int64_t d) {
  for (int64_t r = t.rank; r < rows; r += t.size) {
    float* row = x + r * d;
    const float n = norm_clamped(dot_seq(row, row, d));
    for (int64_t i = 0; i < d; ++i) row[i] = row[i] / n;
  }
}

// Nearest unit centroid of every patch by cosine (at::argmax's tie rule), a thread per patch.
C10_HOST_DEVICE inline void assign(const Team& t, const PartsWork& w, int64_t l, int64_t d, int64_t k) {
  for (int64_t e = t.rank; e < k * d; e += t.size) w.cn[e] = w.m[e];
  t.sync();
  normalize_rows(t, w.cn, k, d);
  t.sync();
  for (int64_t j = t.rank; j < l; j += t.size) {
    float best = 0.f;
    int64_t bc = -1;
    for (int64_t c = 0; c < k; ++c) {
      const float v = dot_seq(w.xn + (j + 1) * d, w.cn + c * d, d);
      if (bc < 0 || argmax_beats(v, c, best, bc)) best = v, bc = c;
    }
    w.a[j] = bc;
  }
  t.sync();
}

// New centroids: each part's member sum in patch order, a thread per column (so one thread runs each sum and
// the CPU streams rows); an empty part keeps its centroid.
C10_HOST_DEVICE inline void update(const Team& t, const PartsWork& w, int64_t l, int64_t d, int64_t k) {
  for (int64_t c = t.rank; c < k; c += t.size) {
    w.cnt[c] = 0;
    for (int64_t j = 0; j < l; ++j) w.cnt[c] += w.a[j] == c ? 1 : 0;
  }
  t.sync();
  for (int64_t c = 0; c < k; ++c) {
    if (w.cnt[c] == 0) continue;
    for (int64_t i = t.rank; i < d; i += t.size) w.m[c * d + i] = 0.f;
  }
  for (int64_t j = 0; j < l; ++j) {
    float* sum = w.m + w.a[j] * d;
    const float* row = w.xn + (j + 1) * d;
    for (int64_t i = t.rank; i < d; i += t.size) sum[i] = sum[i] + row[i];
  }
  t.sync();
}

// Each part's mean cosine to cls (-inf if empty), seed (its member most similar to cls) and rank (higher
// mean first, equal means by lower part index; NaN never beats).
C10_HOST_DEVICE inline void rank_parts(const Team& t, const PartsWork& w, int64_t l, int64_t d, int64_t k) {
  for (int64_t j = t.rank; j < l; j += t.size) w.s[j] = dot_seq(w.xn + (j + 1) * d, w.xn, d);
  t.sync();
  for (int64_t c = t.rank; c < k; c += t.size) {
    float sum = 0.f, cnt = 0.f;
    int64_t seed = -1;
    for (int64_t j = 0; j < l; ++j) {
      if (w.a[j] != c) continue;
      sum = sum + w.s[j];
      cnt += 1.f;
      if (seed < 0 || argmax_beats(w.s[j], j, w.s[seed], seed)) seed = j;
    }
    w.mean[c] = cnt > 0 ? sum / cnt : -INFINITY;
    w.seed[c] = seed;
  }
  t.sync();
  for (int64_t c = t.rank; c < k; c += t.size) {
    int64_t r = 0;
    for (int64_t o = 0; o < k; ++o) r += (w.mean[o] > w.mean[c] || (w.mean[o] == w.mean[c] && o < c)) ? 1 : 0;
    w.rank[c] = r;
  }
  t.sync();
}

// One image's parts: k-means on the unit patches from centroids at patches floor(c*L/k) (spread evenly in
// index order), then the parts ranked. x: (L+1, D) -> w.a, w.seed, w.rank
template <typename scalar_t>
C10_HOST_DEVICE void parts_image(const Team& t, const scalar_t* x, int64_t l, int64_t d, int64_t k,
                                 int64_t iters, const PartsWork& w) {
  for (int64_t e = t.rank; e < (l + 1) * d; e += t.size) w.xn[e] = static_cast<float>(x[e]);
  t.sync();
  normalize_rows(t, w.xn, l + 1, d);
  t.sync();
  for (int64_t e = t.rank; e < k * d; e += t.size) w.m[e] = w.xn[(1 + e / d * l / k) * d + e % d];
  t.sync();
  assign(t, w, l, d, k);
  for (int64_t it = 0; it < iters; ++it) {
    update(t, w, l, d, k);
    assign(t, w, l, d, k);
  }
  rank_parts(t, w, l, d, k);
}

// The parts total order of patches p, q: part rank, squared grid distance from the part's seed, noise, index
// (rank_keys((rank, distance), noise) in the reference).
template <typename noise_t>
struct PartsBefore {
  const noise_t* noise;
  const int64_t *a, *seed, *rank;
  int64_t gw;
  C10_HOST_DEVICE bool operator()(int64_t p, int64_t q) const {
    const int64_t cp = a[p], cq = a[q];
    if (rank[cp] != rank[cq]) return rank[cp] < rank[cq];
    const int64_t dp = grid_d2(p, seed[cp], gw), dq = grid_d2(q, seed[cq], gw);
    return dp != dq ? dp < dq : key_before(noise[p], p, noise[q], q);
  }
};

}  // namespace semaim::kernels

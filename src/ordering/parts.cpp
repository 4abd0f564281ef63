// ATen reference of `parts` (method.md §5): batched cosine k-means on patch features, parts ranked by mean
// similarity to cls, center-out inside each part. The fused op kernels/parts_order is held to it.
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <string>

#include "semaim/core/errors.h"
#include "semaim/ordering/ordering.h"

namespace semaim::ordering {
namespace {

constexpr const char* kWhere = "ordering.parts";
constexpr float kEps = 1e-12f;  // F.normalize's eps, as kernels/parts_order/core.h

// Sums run over D one index at a time (not at::sum) so the arithmetic order is exactly the CPU twin's.
// a: (..., D), b: (..., D) broadcastable -> (...) fp32
at::Tensor dot_seq(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor acc = at::zeros_like(a.select(-1, 0) * b.select(-1, 0));
  for (int64_t d = 0; d < a.size(-1); ++d) acc = acc + a.select(-1, d) * b.select(-1, d);
  return acc;
}

// x: (..., D) -> (..., D), each row divided by max(|row|, eps)
at::Tensor normalize_seq(const at::Tensor& x) {
  return x / at::clamp_min(dot_seq(x, x).sqrt(), kEps).unsqueeze(-1);
}

// Nearest centroid by cosine. xn: (N, L, D), m: (N, k, D) unnormalized centroids -> (N, L) int64
at::Tensor assign(const at::Tensor& xn, const at::Tensor& m) {
  return dot_seq(xn.unsqueeze(2), normalize_seq(m).unsqueeze(1)).argmax(2);
}

}  // namespace

void check_parts_args(int64_t l, int64_t k, int64_t iters) {
  if (k < 1 || k > l) {
    throw InputError("ordering.parts_k", "must be in 1..L = " + std::to_string(l) + ", got " + std::to_string(k));
  }
  if (iters < 0 || iters > 1000) {
    throw InputError("ordering.parts_iters", "must be in 0..1000, got " + std::to_string(iters));
  }
}

at::Tensor parts_keys(const at::Tensor& tokens, int64_t gh, int64_t gw, int64_t k, int64_t iters,
                      const at::Tensor& noise) {
  if (!tokens.defined() || tokens.dim() != 3 || tokens.size(1) < 2 || tokens.size(2) < 1 ||
      !at::isFloatingType(tokens.scalar_type())) {
    throw InputError(kWhere, "tokens must be floating (N, L+1, D) with L >= 1");
  }
  const int64_t n = tokens.size(0), l = tokens.size(1) - 1, d = tokens.size(2);
  if (gh < 1 || gw < 1 || gh * gw != l) throw InputError(kWhere, "grid does not match tokens (gh*gw != L)");
  if (!noise.defined() || noise.dim() != 2 || noise.size(0) != n || noise.size(1) != l) {
    throw InputError(kWhere, "noise must be (N, L)");
  }
  check_parts_args(l, k, iters);
  const at::Tensor t = normalize_seq(tokens.to(at::kFloat));  // (N, L+1, D)
  const at::Tensor cls = t.select(1, 0);                      // (N, D)
  const at::Tensor xn = t.narrow(1, 1, l);                    // (N, L, D)
  auto lopt = at::TensorOptions().dtype(at::kLong).device(t.device());
  // Deterministic init: centroid c starts at patch floor(c*L/k), k patches spread evenly in index order.
  at::Tensor init = at::div(at::arange(k, lopt) * l, k, "floor");  // (k)
  at::Tensor m = xn.index_select(1, init);        // (N, k, D)
  at::Tensor cid = at::arange(k, lopt);           // (k)
  at::Tensor a = assign(xn, m);
  for (int64_t it = 0; it < iters; ++it) {
    // Member sums in patch-index order; an empty cluster keeps its previous centroid.
    at::Tensor onehot = (a.unsqueeze(2) == cid).to(at::kFloat);  // (N, L, k)
    at::Tensor sum = at::zeros({n, k, d}, t.options());
    for (int64_t j = 0; j < l; ++j) sum = sum + onehot.select(1, j).unsqueeze(2) * xn.select(1, j).unsqueeze(1);
    at::Tensor count = onehot.sum(1);  // (N, k), exact integers
    m = at::where(count.unsqueeze(2) > 0, sum, m);
    a = assign(xn, m);
  }
  at::Tensor onehot = (a.unsqueeze(2) == cid).to(at::kFloat);  // (N, L, k)
  at::Tensor s = dot_seq(xn, cls.unsqueeze(1));                // (N, L) cosine to cls
  at::Tensor ssum = at::zeros({n, k}, t.options());
  for (int64_t j = 0; j < l; ++j) ssum = ssum + onehot.select(1, j) * s.select(1, j).unsqueeze(1);
  at::Tensor count = onehot.sum(1);
  // Empty parts score -inf (they have no members; this only fixes their rank).
  at::Tensor mean = at::where(count > 0, ssum / count, -std::numeric_limits<float>::infinity());  // (N, k)
  // rank[c] = number of parts beating c: higher mean first, equal means by lower part index.
  at::Tensor mc = mean.unsqueeze(2), mo = mean.unsqueeze(1);  // c along dim 1, other along dim 2
  at::Tensor lower = (cid.unsqueeze(0) < cid.unsqueeze(1)).unsqueeze(0);  // [c][o] = o < c
  at::Tensor beats = (mo > mc).logical_or((mo == mc).logical_and(lower));
  at::Tensor rank = beats.sum(2);  // (N, k) int64
  // Seed of each part: its member most similar to cls (lowest index on ties).
  at::Tensor masked = at::where(onehot > 0, s.unsqueeze(2), -std::numeric_limits<float>::infinity());
  at::Tensor seed = masked.argmax(1);  // (N, k)
  at::Tensor my_seed = seed.gather(1, a), my_rank = rank.gather(1, a);  // (N, L)
  at::Tensor j = at::arange(l, lopt).unsqueeze(0);
  at::Tensor dr = at::div(j, gw, "floor") - at::div(my_seed, gw, "floor");
  at::Tensor dc = at::remainder(j, gw) - at::remainder(my_seed, gw);
  const int64_t span = (gh - 1) * (gh - 1) + (gw - 1) * (gw - 1) + 1;  // > any squared distance
  at::Tensor primary = (my_rank * span + dr * dr + dc * dc).to(at::kDouble);  // exact integers
  return rank_keys(primary, noise.to(t.device()));
}

}  // namespace semaim::ordering

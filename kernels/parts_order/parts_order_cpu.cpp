// CPU twin of semaim::parts_order (method.md §5 `parts`): the math of core.h, parallel over images.
// Reference: src/ordering/parts.cpp parts_keys (same fp32 arithmetic in the same order, so results are exact).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/ops.h"
#include "kernels/parts_order/core.h"

namespace semaim::kernels {
namespace {

struct Scratch {
  std::vector<float> xn, m, cn, sum, s, cnt, ssum;
  std::vector<int64_t> a, rank, seed, idx;
  Scratch(int64_t l, int64_t d, int64_t k)
      : xn((l + 1) * d), m(k * d), cn(k * d), sum(k * d), s(l), cnt(k), ssum(k), a(l), rank(k), seed(k), idx(l) {}
};

// Unit rows (divided by max(|row|, eps)): src (rows, d) of any float type -> dst (rows, d) fp32
template <typename scalar_t>
void normalize_rows(const scalar_t* src, float* dst, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < d; ++i) dst[r * d + i] = static_cast<float>(src[r * d + i]);
    const float n = norm_clamped(dot_seq<int64_t>(dst + r * d, 1, dst + r * d, 1, d));
    for (int64_t i = 0; i < d; ++i) dst[r * d + i] = dst[r * d + i] / n;
  }
}

// Nearest centroid (cosine) of every patch; w.m holds the unnormalized centroids.
void assign(Scratch& w, int64_t l, int64_t d, int64_t k) {
  normalize_rows(w.m.data(), w.cn.data(), k, d);
  const float* xn = w.xn.data() + d;
  for (int64_t j = 0; j < l; ++j) {
    float best = 0.f;
    int64_t bc = -1;
    for (int64_t c = 0; c < k; ++c) {
      const float v = dot_seq<int64_t>(xn + j * d, 1, w.cn.data() + c * d, 1, d);
      if (bc < 0 || argmax_beats(v, c, best, bc)) best = v, bc = c;
    }
    w.a[j] = bc;
  }
}

template <typename scalar_t, typename noise_t>
void one_image(const scalar_t* x, const noise_t* noise, int64_t l, int64_t d, int64_t gw, int64_t k,
               int64_t iters, int64_t* order, int64_t* inverse, Scratch& w) {
  normalize_rows(x, w.xn.data(), l + 1, d);
  const float* cls = w.xn.data();
  const float* xn = w.xn.data() + d;
  for (int64_t c = 0; c < k; ++c) std::copy_n(xn + parts_init_patch(c, l, k) * d, d, w.m.data() + c * d);
  assign(w, l, d, k);
  for (int64_t it = 0; it < iters; ++it) {
    std::fill(w.sum.begin(), w.sum.end(), 0.f);
    std::fill(w.cnt.begin(), w.cnt.end(), 0.f);
    for (int64_t j = 0; j < l; ++j) {
      float* sc = w.sum.data() + w.a[j] * d;
      for (int64_t i = 0; i < d; ++i) sc[i] = sc[i] + xn[j * d + i];
      w.cnt[w.a[j]] += 1.f;
    }
    for (int64_t c = 0; c < k; ++c) {  // an empty cluster keeps its centroid
      if (w.cnt[c] > 0) std::copy_n(w.sum.data() + c * d, d, w.m.data() + c * d);
    }
    assign(w, l, d, k);
  }
  std::fill(w.ssum.begin(), w.ssum.end(), 0.f);
  std::fill(w.cnt.begin(), w.cnt.end(), 0.f);
  std::fill(w.seed.begin(), w.seed.end(), int64_t(-1));
  for (int64_t j = 0; j < l; ++j) {
    const int64_t c = w.a[j];
    w.s[j] = dot_seq<int64_t>(xn + j * d, 1, cls, 1, d);
    w.ssum[c] = w.ssum[c] + w.s[j];
    w.cnt[c] += 1.f;
    if (w.seed[c] < 0 || argmax_beats(w.s[j], j, w.s[w.seed[c]], w.seed[c])) w.seed[c] = j;
  }
  for (int64_t c = 0; c < k; ++c) w.ssum[c] = w.cnt[c] > 0 ? w.ssum[c] / w.cnt[c] : -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < k; ++c) {
    int64_t r = 0;
    for (int64_t o = 0; o < k; ++o) r += part_beats(w.ssum[o], o, w.ssum[c], c) ? 1 : 0;
    w.rank[c] = r;
  }
  std::iota(w.idx.begin(), w.idx.end(), int64_t(0));
  auto before = [&](int64_t p, int64_t q) {
    const int64_t cp = w.a[p], cq = w.a[q];
    return parts_before(w.rank[cp], grid_d2<int64_t>(p, w.seed[cp], gw), noise[p], p, w.rank[cq],
                        grid_d2<int64_t>(q, w.seed[cq], gw), noise[q], q);
  };
  std::sort(w.idx.begin(), w.idx.end(), before);
  for (int64_t r = 0; r < l; ++r) {
    order[r] = w.idx[r];
    inverse[w.idx[r]] = r;
  }
}

}  // namespace

void check_parts_order_args(const at::Tensor& tokens, int64_t gh, int64_t gw, int64_t k, int64_t iters,
                            const at::Tensor& noise, c10::DeviceType device) {
  TORCH_CHECK(tokens.defined() && tokens.dim() == 3 && tokens.size(1) >= 2 && tokens.size(2) >= 1,
              "semaim::parts_order: tokens must be (N, L+1, D) with L >= 1");
  const auto st = tokens.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kBFloat16 || st == at::kHalf || st == at::kDouble,
              "semaim::parts_order: tokens must be float32, bfloat16, float16 or float64, got ", st);
  const int64_t n = tokens.size(0), l = tokens.size(1) - 1;
  TORCH_CHECK(gh >= 1 && gw >= 1 && gh * gw == l, "semaim::parts_order: the ", gh, "x", gw,
              " grid does not match tokens ", tokens.sizes());
  TORCH_CHECK(k >= 1 && k <= l && iters >= 0 && iters <= 1000,
              "semaim::parts_order: need 1 <= k <= L and 0 <= iters <= 1000, got k=", k, ", iters=", iters);
  TORCH_CHECK(noise.defined() && noise.dim() == 2 && noise.size(0) == n && noise.size(1) == l,
              "semaim::parts_order: noise must be (N, L) = (", n, ", ", l, ")");
  TORCH_CHECK(noise.scalar_type() == at::kFloat || noise.scalar_type() == at::kDouble,
              "semaim::parts_order: noise must be float32 or float64, got ", noise.scalar_type());
  TORCH_CHECK(tokens.device().type() == device && noise.device() == tokens.device(),
              "semaim::parts_order: tokens and noise must both be on one ", c10::DeviceTypeName(device),
              " device");
}

// tokens: (N, L+1, D), noise: (N, L) -> order (N, L), inverse (N, L) int64
std::tuple<at::Tensor, at::Tensor> parts_order_cpu(const at::Tensor& tokens, int64_t gh, int64_t gw, int64_t k,
                                                   int64_t iters, const at::Tensor& noise) {
  check_parts_order_args(tokens, gh, gw, k, iters, noise, c10::DeviceType::CPU);
  const at::Tensor t = tokens.contiguous(), nz = noise.contiguous();
  const int64_t n = t.size(0), l = t.size(1) - 1, d = t.size(2);
  auto opts = t.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts);
  int64_t* o = order.data_ptr<int64_t>();
  int64_t* inv = inverse.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "parts_order_cpu", [&] {
    const scalar_t* x = t.data_ptr<scalar_t>();
    auto go = [&](auto* noise_ptr) {
      at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
        Scratch w(l, d, k);
        for (int64_t i = begin; i < end; ++i) {
          one_image(x + i * (l + 1) * d, noise_ptr + i * l, l, d, gw, k, iters, o + i * l, inv + i * l, w);
        }
      });
    };
    if (nz.scalar_type() == at::kDouble) {
      go(nz.data_ptr<double>());
    } else {
      go(nz.data_ptr<float>());
    }
  });
  return {order, inverse};
}

}  // namespace semaim::kernels

// CPU twin of semaim::semantic_order (method.md §6 steps 2-5): the math of core.h, parallel over images.
// Reference: src/ordering semantic_order_reference (cls_similarity -> argmax -> rank_keys(distance, noise)).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "kernels/semantic_order/core.h"

namespace semaim::kernels {
namespace {

// Independent accumulators so the compiler can vectorize the sums over D (their combine order is fixed).
constexpr int64_t kLanes = 8;

// Sums of patch p (D) against anchor a (D), the lanes combined in a fixed order.
template <typename scalar_t, typename acc_t>
CosAcc<acc_t> accumulate(const scalar_t* p, const acc_t* a, int64_t d) {
  CosAcc<acc_t> lanes[kLanes];
  int64_t k = 0;
  for (; k + kLanes <= d; k += kLanes) {
    for (int64_t q = 0; q < kLanes; ++q) lanes[q].add(static_cast<acc_t>(p[k + q]), a[k + q]);
  }
  for (; k < d; ++k) lanes[k % kLanes].add(static_cast<acc_t>(p[k]), a[k]);
  for (int64_t q = 1; q < kLanes; ++q) lanes[0].add(lanes[q]);
  return lanes[0];
}

// One image, x: (L+1, D), noise: (L) -> order, inverse (L), center: the anchor, every patch's cosine to it,
// their argmax, then the (distance, noise, index) sort.
template <typename scalar_t, typename noise_t>
void one_image(const scalar_t* x, const noise_t* noise, int64_t l, int64_t d, int64_t gw, bool gap,
               int64_t* order, int64_t* inverse, int64_t* center) {
  using acc_t = at::opmath_type<scalar_t>;
  std::vector<acc_t> anchor(d, acc_t(0));
  if (gap) {
    for (int64_t j = 0; j < l; ++j) {
      for (int64_t k = 0; k < d; ++k) anchor[k] += static_cast<acc_t>(x[(j + 1) * d + k]);
    }
    for (int64_t k = 0; k < d; ++k) anchor[k] /= static_cast<acc_t>(l);
  } else {
    for (int64_t k = 0; k < d; ++k) anchor[k] = static_cast<acc_t>(x[k]);
  }
  // |a|^2 with the same accumulator as the patches (dot of the anchor with itself).
  const acc_t aa = accumulate(anchor.data(), anchor.data(), d).pp;
  acc_t best = 0;
  int64_t c = -1;
  for (int64_t j = 0; j < l; ++j) {
    const acc_t s = accumulate(x + (j + 1) * d, anchor.data(), d).cos(aa);
    if (c < 0 || argmax_beats(s, j, best, c)) best = s, c = j;
  }
  std::vector<int64_t> idx(l);
  std::iota(idx.begin(), idx.end(), int64_t(0));
  std::sort(idx.begin(), idx.end(),
            [&](int64_t a, int64_t b) { return semantic_before<noise_t, int64_t>(a, b, noise, c, gw); });
  for (int64_t k = 0; k < l; ++k) {
    order[k] = idx[k];
    inverse[idx[k]] = k;
  }
  *center = c;
}

}  // namespace

void check_token_op_args(const char* op, const at::Tensor& tokens, int64_t gh, int64_t gw,
                         const at::Tensor& noise, c10::DeviceType device) {
  TORCH_CHECK(tokens.defined() && tokens.dim() == 3 && tokens.size(1) >= 2 && tokens.size(2) >= 1, op,
              ": tokens must be (N, L+1, D) with L >= 1, got ",
              tokens.defined() ? tokens.sizes() : at::IntArrayRef{});
  const auto st = tokens.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kBFloat16 || st == at::kHalf || st == at::kDouble, op,
              ": tokens must be float32, bfloat16, float16 or float64, got ", st);
  const int64_t n = tokens.size(0), l = tokens.size(1) - 1;
  TORCH_CHECK(gh >= 1 && gw >= 1 && gh * gw == l, op, ": the ", gh, "x", gw, " grid does not match tokens ",
              tokens.sizes(), " (need gh*gw = L = ", l, ")");
  TORCH_CHECK(noise.defined() && noise.dim() == 2 && noise.size(0) == n && noise.size(1) == l, op,
              ": noise must be (N, L) = (", n, ", ", l, ")");
  TORCH_CHECK(noise.scalar_type() == at::kFloat || noise.scalar_type() == at::kDouble, op,
              ": noise must be float32 or float64, got ", noise.scalar_type());
  TORCH_CHECK(tokens.device().type() == device && noise.device() == tokens.device(), op,
              ": tokens and noise must both be on one ", c10::DeviceTypeName(device), " device, got ",
              tokens.device(), " and ", noise.device());
}

bool check_semantic_order_args(const at::Tensor& tokens, int64_t gh, int64_t gw, c10::string_view source,
                               const at::Tensor& noise, c10::DeviceType device) {
  check_token_op_args("semaim::semantic_order", tokens, gh, gw, noise, device);
  TORCH_CHECK(source == "cls" || source == "gap", "semaim::semantic_order: source must be cls or gap, got ",
              std::string(source));
  return source == "gap";
}

// tokens: (N, L+1, D), noise: (N, L) -> order (N, L), inverse (N, L), center (N) int64
std::tuple<at::Tensor, at::Tensor, at::Tensor> semantic_order_cpu(const at::Tensor& tokens, int64_t gh,
                                                                  int64_t gw, c10::string_view source,
                                                                  const at::Tensor& noise) {
  const bool gap = check_semantic_order_args(tokens, gh, gw, source, noise, c10::DeviceType::CPU);
  const at::Tensor t = tokens.contiguous(), nz = noise.contiguous();
  const int64_t n = t.size(0), l = t.size(1) - 1, d = t.size(2);
  auto opts = t.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts),
             center = at::empty({n}, opts);
  int64_t* o = order.data_ptr<int64_t>();
  int64_t* inv = inverse.data_ptr<int64_t>();
  int64_t* c = center.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "semantic_order_cpu", [&] {
    const scalar_t* x = t.data_ptr<scalar_t>();
    auto run = [&](const auto* noise_ptr) {
      at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          one_image(x + i * (l + 1) * d, noise_ptr + i * l, l, d, gw, gap, o + i * l, inv + i * l, c + i);
        }
      });
    };
    if (nz.scalar_type() == at::kDouble) {
      run(nz.data_ptr<double>());
    } else {
      run(nz.data_ptr<float>());
    }
  });
  return {order, inverse, center};
}

}  // namespace semaim::kernels

// Per-strategy keys (method.md §5-6; models_semaim.py generate_*_permutation, calculate_attention_*).
// Vectorized over the batch, no per-sample loops: each function can serve as a fused kernel's reference.
#include <ATen/ATen.h>

#include <cmath>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/ordering/ordering.h"

namespace semaim::ordering {
namespace {

constexpr const char* kWhere = "ordering";

void check_grid(int64_t n, int64_t gh, int64_t gw) {
  if (n < 0) throw InputError(kWhere, "batch size must be >= 0, got " + std::to_string(n));
  if (gh < 1 || gw < 1) {
    throw InputError(kWhere,
                     "grid must be at least 1x1, got " + std::to_string(gh) + "x" + std::to_string(gw));
  }
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

void check_tokens(const at::Tensor& tokens) {
  if (!tokens.defined()) throw InputError(kWhere, "encoder tokens are required but none were given");
  if (tokens.dim() != 3 || tokens.size(1) < 2 || tokens.size(2) < 1) {
    throw InputError(kWhere, "encoder tokens must be (N, L+1, D) with L >= 1, got " + shape_str(tokens));
  }
  if (!at::isFloatingType(tokens.scalar_type())) {
    throw InputError(kWhere, "encoder tokens must be floating point, got " +
                                 std::string(c10::toString(tokens.scalar_type())));
  }
}

void check_tokens_grid(const at::Tensor& tokens, int64_t gh, int64_t gw) {
  check_tokens(tokens);
  check_grid(tokens.size(0), gh, gw);
  if (tokens.size(1) != gh * gw + 1) {
    throw InputError(kWhere, "encoder tokens " + shape_str(tokens) + " do not match the " +
                                 std::to_string(gh) + "x" + std::to_string(gw) + " grid (expected " +
                                 std::to_string(gh * gw + 1) + " tokens: cls + one per patch)");
  }
}

void check_noise(const at::Tensor& noise, const at::Tensor& tokens) {
  const int64_t n = tokens.size(0), l = tokens.size(1) - 1;
  if (!noise.defined() || noise.dim() != 2 || noise.size(0) != n || noise.size(1) != l) {
    throw InputError(kWhere, "noise must be (N, L) = (" + std::to_string(n) + ", " + std::to_string(l) +
                                 "), got " + (noise.defined() ? shape_str(noise) : std::string("none")));
  }
  if (!at::isFloatingType(noise.scalar_type())) throw InputError(kWhere, "noise must be floating point");
}

// Row and column of every patch: -> (L), (L) int64
std::pair<at::Tensor, at::Tensor> patch_rows_cols(int64_t gh, int64_t gw, at::Device device) {
  at::Tensor j = at::arange(gh * gw, at::TensorOptions().dtype(at::kLong).device(device));
  return {at::div(j, gw, "floor"), at::remainder(j, gw)};
}

// Windows around the given centers, counted per patch. centers: (N, 2) int64 -> (N, L) float32
at::Tensor count_windows(const at::Tensor& centers, int64_t gh, int64_t gw,
                         const std::vector<int64_t>& windows) {
  const int64_t n = centers.size(0);
  auto opts = at::TensorOptions().dtype(at::kLong).device(centers.device());
  if (windows.empty()) return at::zeros({n, gh * gw}, opts.dtype(at::kFloat));
  at::Tensor side = at::tensor(windows, at::kLong).to(centers.device()).view({1, -1});  // (1, K)
  at::Tensor cr = centers.select(1, 0).view({n, 1}), cc = centers.select(1, 1).view({n, 1});
  // Start = center - s/2, shifted so the window lies inside the grid: (N, K)
  at::Tensor r0 = at::minimum(at::clamp_min(cr - at::div(side, 2, "floor"), 0), gh - side);
  at::Tensor c0 = at::minimum(at::clamp_min(cc - at::div(side, 2, "floor"), 0), gw - side);
  auto [rows, cols] = patch_rows_cols(gh, gw, centers.device());
  rows = rows.view({1, 1, -1});
  cols = cols.view({1, 1, -1});
  r0 = r0.unsqueeze(2);
  c0 = c0.unsqueeze(2);
  at::Tensor s = side.unsqueeze(2);
  at::Tensor inside = (rows >= r0) & (rows < r0 + s) & (cols >= c0) & (cols < c0 + s);  // (N, K, L)
  return inside.sum(1).to(at::kFloat);
}

// Shared body of center_out and stochastic_center. centers: (N, 2) -> (N, L) float32
at::Tensor windowed_keys(const at::Tensor& centers, int64_t gh, int64_t gw,
                         const std::vector<int64_t>& windows, at::Generator& gen) {
  const std::vector<int64_t> w = windows.empty() ? default_center_windows(gh, gw) : windows;
  check_center_windows(w, gh, gw);
  at::Tensor count = count_windows(centers, gh, gw, w);
  // In float64 so rank/L - count stays exact before the float32 cast (distinct for L up to ~1e6).
  at::Tensor u = stochastic_keys(centers.size(0), gh * gw, gen).to(at::kDouble);
  return (u - count.to(at::kDouble)).to(at::kFloat);
}

}  // namespace

at::Tensor raster_keys(int64_t n, int64_t gh, int64_t gw) {
  check_grid(n, gh, gw);
  return at::arange(gh * gw, at::kFloat).unsqueeze(0).expand({n, gh * gw}).contiguous();
}

at::Tensor snake_keys(int64_t n, int64_t gh, int64_t gw) {
  check_grid(n, gh, gw);
  auto [rows, cols] = patch_rows_cols(gh, gw, at::kCPU);
  at::Tensor odd = at::remainder(rows, 2).to(at::kBool);
  at::Tensor along = at::where(odd, gw - 1 - cols, cols);  // column index along the row's direction
  at::Tensor key = (rows * gw + along).to(at::kFloat);
  return key.unsqueeze(0).expand({n, gh * gw}).contiguous();
}

at::Tensor stochastic_keys(int64_t n, int64_t l, at::Generator& gen) {
  if (n < 0 || l < 1) {
    throw InputError(kWhere, "stochastic keys need N >= 0 and L >= 1, got N=" + std::to_string(n) +
                                 " L=" + std::to_string(l));
  }
  // Rank of float64 uniforms (ties, if ever, go by index): a uniform random permutation with no float ties.
  at::Tensor u = at::rand({n, l}, gen, at::TensorOptions().dtype(at::kDouble));
  at::Tensor order = at::argsort(u, /*stable=*/true, 1);
  at::Tensor rank = at::empty_like(order).scatter_(1, order, at::arange(l, at::kLong).expand({n, l}));
  return rank.to(at::kFloat) / static_cast<float>(l);
}

std::vector<int64_t> default_center_windows(int64_t gh, int64_t gw) {
  check_grid(0, gh, gw);
  const int64_t m = std::min(gh, gw);
  const int64_t parity = m % 2;
  std::vector<int64_t> out;
  for (int k = 0; k < 3; ++k) {
    const double x = static_cast<double>(m) * (2.0 * k + 1.0) / 7.0;
    // Nearest integer with m's parity; an exact tie goes to the smaller size.
    int64_t s = 2 * static_cast<int64_t>(std::ceil((x - parity) / 2.0 - 0.5)) + parity;
    s = std::max<int64_t>(s, parity ? 1 : 2);
    if (s < m && (out.empty() || out.back() != s)) out.push_back(s);
  }
  return out;
}

void check_center_windows(const std::vector<int64_t>& windows, int64_t gh, int64_t gw) {
  const int64_t m = std::min(gh, gw);
  std::set<int64_t> seen;
  for (int64_t s : windows) {
    if (s < 1 || s > m) {
      throw InputError("ordering.center_windows", "window side " + std::to_string(s) + " does not fit the " +
                                                      std::to_string(gh) + "x" + std::to_string(gw) +
                                                      " grid (sides must be 1.." + std::to_string(m) + ")");
    }
    if (!seen.insert(s).second) {
      throw InputError("ordering.center_windows", "window side " + std::to_string(s) + " is listed twice");
    }
  }
}

at::Tensor window_count(const at::Tensor& centers, int64_t gh, int64_t gw,
                        const std::vector<int64_t>& windows) {
  check_grid(0, gh, gw);
  if (!centers.defined() || centers.dim() != 2 || centers.size(1) != 2) {
    throw InputError(kWhere, "window centers must be (N, 2)");
  }
  check_center_windows(windows, gh, gw);
  return count_windows(centers.to(at::kLong), gh, gw, windows);
}

at::Tensor center_out_keys(int64_t n, int64_t gh, int64_t gw, const std::vector<int64_t>& windows,
                           at::Generator& gen) {
  check_grid(n, gh, gw);
  at::Tensor center = at::tensor({gh / 2, gw / 2}, at::kLong).view({1, 2}).expand({n, 2});
  return windowed_keys(center, gh, gw, windows, gen);
}

at::Tensor stochastic_center_keys(int64_t n, int64_t gh, int64_t gw, const std::vector<int64_t>& windows,
                                  at::Generator& gen) {
  check_grid(n, gh, gw);
  at::Tensor cr = at::randint(gh, {n}, gen, at::kLong);
  at::Tensor cc = at::randint(gw, {n}, gen, at::kLong);
  return windowed_keys(at::stack({cr, cc}, 1), gh, gw, windows, gen);
}

at::Tensor cls_similarity(const at::Tensor& tokens, SimilaritySource src) {
  check_tokens(tokens);
  // F.normalize's eps: an all-zero token gets similarity 0 instead of NaN.
  auto normalize = [](const at::Tensor& x) { return x / at::clamp_min(x.norm(2, -1, true), 1e-12); };
  // Half-precision tokens (a bf16 source pass) are compared in float32: cosines need the mantissa.
  const bool reduced = at::elementSize(tokens.scalar_type()) < 4;
  const at::Tensor t = reduced ? tokens.to(at::kFloat) : tokens;
  at::Tensor patches = t.narrow(1, 1, t.size(1) - 1);                    // (N, L, D)
  at::Tensor anchor = src == SimilaritySource::kCls ? t.narrow(1, 0, 1)  // (N, 1, D)
                                                    : patches.mean(1, true);
  return (normalize(patches) * normalize(anchor)).sum(-1);
}

at::Tensor similarity_keys(const at::Tensor& tokens, SimilaritySource src, const at::Tensor& noise) {
  check_tokens(tokens);
  check_noise(noise, tokens);
  at::Tensor sim = cls_similarity(tokens, src);
  return (noise.to(sim.device(), sim.scalar_type()) - sim).to(at::kFloat);
}

at::Tensor semantic_center(const at::Tensor& tokens, SimilaritySource src) {
  return cls_similarity(tokens, src).argmax(1);
}

at::Tensor grid_distance(const at::Tensor& center, int64_t gh, int64_t gw, at::ScalarType dtype) {
  check_grid(0, gh, gw);
  if (!center.defined() || center.dim() != 1) throw InputError(kWhere, "center must be (N)");
  at::Tensor c = center.to(at::kLong).view({-1, 1});
  auto [rows, cols] = patch_rows_cols(gh, gw, c.device());
  at::Tensor dr = rows.view({1, -1}) - at::div(c, gw, "floor");
  at::Tensor dc = cols.view({1, -1}) - at::remainder(c, gw);
  // Squared distances are exact integers, so equal distances stay bit-identical ties.
  return (dr * dr + dc * dc).to(dtype).sqrt();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> semantic_order_reference(const at::Tensor& tokens, int64_t gh,
                                                                        int64_t gw, SimilaritySource src,
                                                                        const at::Tensor& noise) {
  check_tokens_grid(tokens, gh, gw);
  check_noise(noise, tokens);
  at::Tensor center = semantic_center(tokens, src);              // (N)
  at::Tensor dist = grid_distance(center, gh, gw, at::kDouble);  // (N, L)
  at::Tensor tie = noise.to(dist.device());
  // rank_keys' lexicographic (distance, noise, index): stably by the noise, then stably by the distance.
  at::Tensor by_tie = at::argsort(tie, /*stable=*/true, 1);
  at::Tensor order = by_tie.gather(1, at::argsort(dist.gather(1, by_tie), /*stable=*/true, 1));
  at::Tensor inverse =
      at::empty_like(order).scatter_(1, order, at::arange(order.size(1), order.options()).expand_as(order));
  return {order, inverse, center};
}

at::Tensor semantic_keys(const at::Tensor& tokens, int64_t gh, int64_t gw, SimilaritySource src,
                         const at::Tensor& noise) {
  check_tokens_grid(tokens, gh, gw);
  check_noise(noise, tokens);
  at::Tensor center = semantic_center(tokens, src);             // (N)
  at::Tensor dist = grid_distance(center, gh, gw, at::kFloat);  // (N, L)
  return dist + noise.to(dist.device(), at::kFloat);
}

}  // namespace semaim::ordering

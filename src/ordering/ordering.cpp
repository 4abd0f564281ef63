// Strategy names, make_keys (the engine's entry point) and key -> permutation (SPEC §2, §4, §5, §6).
// make_keys ranks every strategy's key in float64 so the engine always gets exactly distinct keys.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/config/errors.h"
#include "semaim/ordering/kernels.h"
#include "semaim/ordering/ordering.h"

namespace semaim::ordering {
namespace {

const std::vector<std::pair<std::string, Strategy>>& strategy_table() {
  static const std::vector<std::pair<std::string, Strategy>> kTable = {
      {"raster", Strategy::kRaster},
      {"snake", Strategy::kSnake},
      {"stochastic", Strategy::kStochastic},
      {"center_out", Strategy::kCenterOut},
      {"stochastic_center", Strategy::kStochasticCenter},
      {"similarity", Strategy::kSimilarity},
      {"semantic", Strategy::kSemantic},
      {"parts", Strategy::kParts}};
  return kTable;
}

// Reference names whose semaim spelling differs (SPEC §5); "raster" is valid in both with different meanings.
const std::vector<std::pair<std::string, std::string>>& reference_aliases() {
  static const std::vector<std::pair<std::string, std::string>> kAliases = {{"zigzag", "raster"},
                                                                            {"center2out", "center_out"},
                                                                            {"attention", "similarity"},
                                                                            {"attention_center", "semantic"}};
  return kAliases;
}

std::string joined_names() {
  std::string s;
  for (const auto& [name, _] : strategy_table()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

// Inverse of a per-row permutation. order: (N, L) int64 -> (N, L) int64
at::Tensor invert(const at::Tensor& order) {
  at::Tensor pos = at::arange(order.size(1), order.options()).expand_as(order);
  return at::empty_like(order).scatter_(1, order, pos);
}

// True iff distance + tie_noise*U (U in [0, 1)) cannot reorder two different grid distances: distinct
// squared distances m' > m <= M differ in sqrt by >= 1/(2*sqrt(M)); half of that leaves room for rounding.
bool noise_only_breaks_ties(double tie_noise, int64_t gh, int64_t gw) {
  const double max_d2 = static_cast<double>((gh - 1) * (gh - 1) + (gw - 1) * (gw - 1));
  return tie_noise < 0.25 / std::sqrt(std::max(max_d2, 1.0));
}

}  // namespace

Strategy parse_strategy(const std::string& name) {
  for (const auto& [n, s] : strategy_table()) {
    if (n == name) return s;
  }
  std::string hint;
  for (const auto& [ref, ours] : reference_aliases()) {
    if (ref == name) hint = "the reference's '" + ref + "' is semaim's '" + ours + "'";
  }
  if (hint.empty()) {
    std::string best;
    size_t best_d = static_cast<size_t>(-1);
    for (const auto& [n, _] : strategy_table()) {
      const size_t d = config::edit_distance(name, n);
      if (d < best_d) best_d = d, best = n;
    }
    hint = "did you mean '" + best + "'?";
  }
  throw InputError("ordering.strategy",
                   "unknown ordering '" + name + "'; " + hint + " (valid: " + joined_names() + ")");
}

std::string strategy_name(Strategy s) {
  for (const auto& [n, t] : strategy_table()) {
    if (t == s) return n;
  }
  throw RuntimeFailure("ordering: strategy value " + std::to_string(static_cast<int>(s)) + " has no name");
}

std::vector<std::string> strategy_names() {
  std::vector<std::string> out;
  for (const auto& [n, _] : strategy_table()) out.push_back(n);
  return out;
}

bool needs_tokens(Strategy s) {
  return s == Strategy::kSimilarity || s == Strategy::kSemantic || s == Strategy::kParts;
}

SimilaritySource parse_source(const std::string& name) {
  if (name == "cls") return SimilaritySource::kCls;
  if (name == "gap") return SimilaritySource::kGap;
  throw InputError("ordering.source", "unknown similarity source '" + name + "' (valid: cls, gap)");
}

std::string source_name(SimilaritySource s) { return s == SimilaritySource::kCls ? "cls" : "gap"; }

Permutation order_from_keys_reference(const at::Tensor& keys) {
  if (!keys.defined() || keys.dim() != 2) throw InputError("ordering", "keys must be (N, L)");
  at::Tensor order = at::argsort(keys, /*stable=*/true, 1);
  return {order, invert(order)};
}

at::Tensor rank_keys(const at::Tensor& primary, const at::Tensor& tiebreak) {
  if (!primary.defined() || !tiebreak.defined() || primary.dim() != 2 ||
      primary.sizes() != tiebreak.sizes()) {
    throw InputError("ordering", "rank_keys needs two (N, L) tensors of the same shape");
  }
  // Lexicographic (primary, tiebreak): stable sort by the tiebreak, then stably by the primary key.
  at::Tensor by_tie = at::argsort(tiebreak, /*stable=*/true, 1);
  at::Tensor by_primary = at::argsort(primary.gather(1, by_tie.to(primary.device())), /*stable=*/true, 1);
  at::Tensor order = by_tie.to(primary.device()).gather(1, by_primary);
  return invert(order).to(at::kFloat);
}

bool keys_distinct(const at::Tensor& keys) {
  if (!keys.defined() || keys.dim() != 2) throw InputError("ordering", "keys must be (N, L)");
  if (keys.size(1) < 2 || keys.size(0) == 0) return true;
  at::Tensor s = std::get<0>(keys.sort(1));
  return !(s.narrow(1, 1, s.size(1) - 1) == s.narrow(1, 0, s.size(1) - 1)).any().item<bool>();
}

Ordering make_order(const OrderingConfig& cfg, int64_t n, int64_t gh, int64_t gw, const at::Tensor& tokens,
                    at::Generator& gen, at::Device device) {
  if (!std::isfinite(cfg.tie_noise) || cfg.tie_noise < 0) {
    throw InputError("ordering.tie_noise", "must be finite and >= 0, got " + std::to_string(cfg.tie_noise));
  }
  if (n < 0 || gh < 1 || gw < 1) {
    throw InputError("ordering", "need N >= 0 and a grid of at least 1x1, got N=" + std::to_string(n) + ", " +
                                     std::to_string(gh) + "x" + std::to_string(gw));
  }
  const int64_t l = gh * gw;
  if (needs_tokens(cfg.strategy)) {
    if (!tokens.defined()) {
      throw InputError("ordering", "strategy '" + strategy_name(cfg.strategy) + "' needs encoder tokens");
    }
    if (tokens.dim() != 3 || tokens.size(0) != n || tokens.size(1) != l + 1) {
      std::string got;
      for (int64_t i = 0; i < tokens.dim(); ++i) got += (i ? ", " : "") + std::to_string(tokens.size(i));
      throw InputError("ordering", "encoder tokens (" + got + ") do not match N=" + std::to_string(n) +
                                       " on a " + std::to_string(gh) + "x" + std::to_string(gw) +
                                       " grid (expected (" + std::to_string(n) + ", " +
                                       std::to_string(l + 1) + ", D))");
    }
  }
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  Permutation perm;
  switch (cfg.strategy) {
    case Strategy::kRaster:
      perm = order_from_keys(raster_keys(n, gh, gw).to(device));
      break;
    case Strategy::kSnake:
      perm = order_from_keys(snake_keys(n, gh, gw).to(device));
      break;
    case Strategy::kStochastic:
      perm = order_from_keys(stochastic_keys(n, l, gen).to(device));
      break;
    case Strategy::kCenterOut:
      perm = order_from_keys(center_out_keys(n, gh, gw, cfg.center_windows, gen).to(device));
      break;
    case Strategy::kStochasticCenter:
      perm = order_from_keys(stochastic_center_keys(n, gh, gw, cfg.center_windows, gen).to(device));
      break;
    case Strategy::kSimilarity: {
      // SPEC §5: key = -similarity; exact ties (identical tokens) go in random order: rank_keys'
      // lexicographic (primary, tiebreak, index) order as two stable sorts, both through the op.
      at::Tensor tie = at::rand({n, l}, gen, f64).to(tokens.device());
      at::Tensor primary = cls_similarity(tokens, cfg.source).neg();
      const Permutation by_tie = order_from_keys(tie);
      const Permutation by_primary = order_from_keys(primary.gather(1, by_tie.order));
      at::Tensor order = by_tie.order.gather(1, by_primary.order);
      perm = {order, invert(order)};
      break;
    }
    case Strategy::kSemantic: {
      // SPEC §6 step 5 in float64 (distance + tie_noise*U), ranked; exact ties left (tie_noise = 0) go by U.
      at::Tensor u = at::rand({n, l}, gen, f64).to(tokens.device());
      if (noise_only_breaks_ties(cfg.tie_noise, gh, gw) && (!tokens.is_cuda() || cuda_kernels_built())) {
        // Then that ranking is exactly (distance, U, index): the fused op's order.
        auto [order, inverse, center] = semantic_order(tokens, gh, gw, source_name(cfg.source), u);
        perm = {order, inverse};
        break;
      }
      at::Tensor center = semantic_center(tokens, cfg.source);
      at::Tensor key64 = grid_distance(center, gh, gw, at::kDouble) + cfg.tie_noise * u;
      perm = order_from_keys(rank_keys(key64, u));
      break;
    }
    case Strategy::kParts: {
      // The op's order is (part rank, distance, U, index).
      at::Tensor u = at::rand({n, l}, gen, f64).to(tokens.device());
      const int64_t k = std::min(cfg.parts_k, l);
      check_parts_args(l, k, cfg.parts_iters);
      if (tokens.is_cuda() && !cuda_kernels_built()) {
        perm = order_from_keys(parts_keys(tokens, gh, gw, k, cfg.parts_iters, u));
      } else {
        auto [order, inverse] = parts_order(tokens, gh, gw, k, cfg.parts_iters, u);
        perm = {order, inverse};
      }
      break;
    }
  }
  Ordering out;
  out.order = perm.order.to(device);
  out.inverse = perm.inverse.to(device);
  out.keys = out.inverse.to(at::kFloat);  // the rank of each patch: exactly distinct
  return out;
}

at::Tensor make_keys(const OrderingConfig& cfg, int64_t n, int64_t gh, int64_t gw, const at::Tensor& tokens,
                     at::Generator& gen, at::Device device) {
  return make_order(cfg, n, gh, gw, tokens, gen, device).keys;
}

}  // namespace semaim::ordering

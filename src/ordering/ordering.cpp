// The strategy table (names, permutations, docs), make_order (the engine's entry point) and key ->
// permutation (method.md §2, §4, §5, §6). Every strategy is ranked so the engine always gets exactly distinct
// keys.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/ordering/kernels.h"
#include "semaim/ordering/ordering.h"

namespace semaim::ordering {
namespace {

// Reference names whose semaim spelling differs (method.md §5); "raster" is valid in both with different
// meanings.
const std::vector<std::pair<std::string, std::string>>& reference_aliases() {
  static const std::vector<std::pair<std::string, std::string>> kAliases = {{"zigzag", "raster"},
                                                                            {"center2out", "center_out"},
                                                                            {"attention", "similarity"},
                                                                            {"attention_center", "semantic"}};
  return kAliases;
}

std::string joined_names() {
  std::string s;
  for (const auto& row : strategy_table()) s += (s.empty() ? "" : ", ") + std::string(row.name);
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

// A data-free strategy's keys (N, L), ordered by the op on the requested device.
Permutation by_keys(const at::Tensor& keys, const StrategyInput& in) {
  return order_from_keys(keys.to(in.device));
}

// method.md §5: key = -similarity; exact ties (identical tokens) go in random order: rank_keys' lexicographic
// (primary, tiebreak, index) order as two stable sorts, both through the op.
Permutation permute_similarity(const StrategyInput& in) {
  const int64_t l = in.gh * in.gw;
  at::Tensor tie = at::rand({in.n, l}, in.gen, at::TensorOptions().dtype(at::kDouble)).to(in.tokens.device());
  at::Tensor primary = cls_similarity(in.tokens, in.cfg.source).neg();
  const Permutation by_tie = order_from_keys(tie);
  const Permutation by_primary = order_from_keys(primary.gather(1, by_tie.order));
  at::Tensor order = by_tie.order.gather(1, by_primary.order);
  return {order, invert(order)};
}

// method.md §6 step 5 in float64 (distance + tie_noise*U), ranked; exact ties left (tie_noise = 0) go by U.
Permutation permute_semantic(const StrategyInput& in) {
  const int64_t l = in.gh * in.gw;
  at::Tensor u = at::rand({in.n, l}, in.gen, at::TensorOptions().dtype(at::kDouble)).to(in.tokens.device());
  if (noise_only_breaks_ties(in.cfg.tie_noise, in.gh, in.gw) &&
      (!in.tokens.is_cuda() || cuda_kernels_built())) {
    // Then that ranking is exactly (distance, U, index): the fused op's order.
    auto [order, inverse, center] = semantic_order(in.tokens, in.gh, in.gw, source_name(in.cfg.source), u);
    return {order, inverse};
  }
  at::Tensor center = semantic_center(in.tokens, in.cfg.source);
  at::Tensor key64 = grid_distance(center, in.gh, in.gw, at::kDouble) + in.cfg.tie_noise * u;
  return order_from_keys(rank_keys(key64, u));
}

// The op's order is (part rank, distance, U, index).
Permutation permute_parts(const StrategyInput& in) {
  const int64_t l = in.gh * in.gw;
  at::Tensor u = at::rand({in.n, l}, in.gen, at::TensorOptions().dtype(at::kDouble)).to(in.tokens.device());
  const int64_t k = std::min(in.cfg.parts_k, l);
  check_parts_args(l, k, in.cfg.parts_iters);
  if (in.tokens.is_cuda() && !cuda_kernels_built()) {
    return order_from_keys(parts_keys(in.tokens, in.gh, in.gw, k, in.cfg.parts_iters, u));
  }
  auto [order, inverse] = parts_order(in.tokens, in.gh, in.gw, k, in.cfg.parts_iters, u);
  return {order, inverse};
}

}  // namespace

const std::vector<StrategyDef>& strategy_table() {
  using In = const StrategyInput&;
  static const std::vector<StrategyDef> kTable = {
      {"raster", [](In in) { return by_keys(raster_keys(in.n, in.gh, in.gw), in); }, false,
       "row-major patch index"},
      {"snake", [](In in) { return by_keys(snake_keys(in.n, in.gh, in.gw), in); }, false,
       "row-major with every odd row reversed (boustrophedon)"},
      {"stochastic", [](In in) { return by_keys(stochastic_keys(in.n, in.gh * in.gw, in.gen), in); }, false,
       "a uniformly random order per image (SAIM)"},
      {"center_out",
       [](In in) { return by_keys(center_out_keys(in.n, in.gh, in.gw, in.cfg.center_windows, in.gen), in); },
       false, "nested windows around the grid center, inward first, random inside each ring"},
      {"stochastic_center",
       [](In in) {
         return by_keys(stochastic_center_keys(in.n, in.gh, in.gw, in.cfg.center_windows, in.gen), in);
       },
       false, "the same windows around a random center per image"},
      {"similarity", permute_similarity, true,
       "decreasing cosine similarity to the cls token (or the mean patch), ties at random"},
      {"semantic", permute_semantic, true,
       "grid distance from the patch most similar to cls, ties at random (SemAIM's default)"},
      {"parts", permute_parts, true,
       "k-means parts of the patch features ranked by mean similarity to cls, center-out inside each part"},
  };
  return kTable;
}

Strategy parse_strategy(const std::string& name) {
  for (const auto& row : strategy_table()) {
    if (row.name == name) return Strategy(&row);
  }
  std::string hint;
  for (const auto& [ref, ours] : reference_aliases()) {
    if (ref == name) hint = "the reference's '" + ref + "' is semaim's '" + ours + "'";
  }
  if (hint.empty()) {
    std::string best;
    size_t best_d = static_cast<size_t>(-1);
    for (const auto& row : strategy_table()) {
      const size_t d = config::edit_distance(name, row.name);
      if (d < best_d) best_d = d, best = row.name;
    }
    hint = "did you mean '" + best + "'?";
  }
  throw InputError("ordering.strategy",
                   "unknown ordering '" + name + "'; " + hint + " (valid: " + joined_names() + ")");
}

std::string strategy_name(Strategy s) { return s.def().name; }

std::vector<std::string> strategy_names() {
  std::vector<std::string> out;
  for (const auto& row : strategy_table()) out.push_back(row.name);
  return out;
}

bool needs_tokens(Strategy s) { return s.def().needs_tokens; }

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
  const Permutation perm = cfg.strategy.def().permute({cfg, n, gh, gw, tokens, gen, device});
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

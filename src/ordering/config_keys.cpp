// ordering.* keys (method.md §5-6); the strategy's choices and description come from strategy_table().
#include "semaim/ordering/config_keys.h"

#include "semaim/ordering/ordering.h"

namespace semaim::ordering {

void register_config_keys(config::Schema& s) {
  using T = config::ValueType;
  std::string strategies;
  for (const auto& row : strategy_table()) {
    strategies += (strategies.empty() ? "" : "; ") + std::string("`") + row.name + "`: " + row.summary;
  }
  s.add_section("ordering");
  s.add({"ordering.strategy",
         T::kString,
         "semantic",
         "Patch ordering (method.md §5): " + strategies + ".",
         {},
         {},
         strategy_names()});
  s.add({"ordering.source",
         T::kString,
         "cls",
         "Similarity source for similarity/semantic: `cls` token or `gap` (mean patch).",
         {},
         {},
         {"cls", "gap"}});
  s.add({"ordering.source_model",
         T::kString,
         "online",
         "Model whose tokens drive the semantic pass: `online` (reference default) or `ema` (needs "
         "pretrain.ema).",
         {},
         {},
         {"online", "ema"}});
  s.add({"ordering.center_windows", T::kIntList, "[]",
         "Side lengths of the nested windows of center_out/stochastic_center; empty = scaled from the "
         "reference's 14x14 windows.",
         1});
  s.add({"ordering.parts_k", T::kInt, "4",
         "Parts per image for `parts` (per-image k-means on patch features; clamped to L).", 1, 4096});
  s.add({"ordering.parts_iters", T::kInt, "5", "k-means iterations for `parts`.", 0, 1000});
  s.add({"ordering.tie_noise", T::kFloat, "0.001",
         "Scale of the uniform tie-break noise added to grid distances (method.md §6).", 0.0, 0.5});
  s.add({"ordering.pass_dtype",
         T::kString,
         "fp32",
         "Precision of the no-grad semantic pass: `fp32` (reference) or `bf16`.",
         {},
         {},
         {"fp32", "bf16"}});
}

}  // namespace semaim::ordering

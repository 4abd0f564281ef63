// Encoder layers shared by the fine-tuning models: stochastic depth (timm layers/drop.py drop_path,
// calculate_drop_path_rates) and position-table resampling (timm layers/pos_embed.py resample_abs_pos_embed).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace semaim::models {

// Stochastic depth (timm drop_path, scale_by_keep): in training with rate > 0 each sample's residual branch
// is zeroed with probability `rate`, the kept ones scaled by 1/(1 - rate); the per-sample keep mask is drawn
// from ATen's default generator. Otherwise x itself is returned (no op, no draw). x: (N, ...) -> (N, ...)
at::Tensor drop_path(const at::Tensor& x, double rate, bool training);

// Per-block drop-path rates rising linearly from 0 to `rate` (timm's dpr, torch.linspace in float32).
std::vector<double> drop_path_rates(double rate, int64_t depth);

// A grid height and width in patches.
struct Grid {
  int64_t h = 0, w = 0;
  bool operator==(const Grid&) const = default;
};

// timm resample_abs_pos_embed: the `num_prefix_tokens` leading rows are kept, the (old.h x old.w) grid part
// is interpolated to new_grid bicubically with antialias (timm's defaults: antialias=True,
// align_corners=False), in float32, and cast back. Returns `posemb` itself when the grids are equal.
// posemb: (1, P + old.h*old.w, D) -> (1, P + new.h*new.w, D)
at::Tensor resample_abs_pos_embed(const at::Tensor& posemb, Grid new_grid, Grid old_grid,
                                  int64_t num_prefix_tokens = 1);

}  // namespace semaim::models

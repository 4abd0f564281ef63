// Stochastic depth and position-table resampling with timm's semantics (layers/drop.py drop_path,
// calculate_drop_path_rates; layers/pos_embed.py resample_abs_pos_embed).
#include "semaim/models/layers.h"

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::models {

// x: (N, ...) -> (N, ...)
at::Tensor drop_path(const at::Tensor& x, double rate, bool training) {
  if (rate == 0.0 || !training) return x;
  const double keep = 1.0 - rate;
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  // One Bernoulli draw per sample from the default generator, as timm's x.new_empty(shape).bernoulli_(keep).
  auto mask = at::empty(shape, x.options()).bernoulli_(keep);
  if (keep > 0.0) mask.div_(keep);
  return x * mask;
}

std::vector<double> drop_path_rates(double rate, int64_t depth) {
  // float32 linspace, read back as double: the exact values timm's Python floats hold.
  auto steps = at::linspace(0.0, rate, depth, at::TensorOptions().dtype(at::kFloat)).to(at::kDouble);
  const double* p = steps.data_ptr<double>();
  return std::vector<double>(p, p + depth);
}

// posemb: (1, P + old.h*old.w, D) -> (1, P + new.h*new.w, D)
at::Tensor resample_abs_pos_embed(const at::Tensor& posemb, Grid new_grid, Grid old_grid,
                                  int64_t num_prefix_tokens) {
  if (new_grid.h <= 0 || new_grid.w <= 0 || old_grid.h <= 0 || old_grid.w <= 0 || num_prefix_tokens < 0)
    throw InputError("pos_embed", "grids must be positive and the prefix count non-negative");
  if (posemb.dim() != 3 || posemb.size(0) != 1 ||
      posemb.size(1) != num_prefix_tokens + old_grid.h * old_grid.w)
    throw InputError("pos_embed", "expected (1, " + std::to_string(num_prefix_tokens) + " + " +
                                      std::to_string(old_grid.h) + "*" + std::to_string(old_grid.w) +
                                      ", D), got " + c10::str(posemb.sizes()));
  if (new_grid == old_grid) return posemb;
  const int64_t dim = posemb.size(2);
  auto prefix = posemb.narrow(1, 0, num_prefix_tokens);
  auto grid = posemb.narrow(1, num_prefix_tokens, old_grid.h * old_grid.w)
                  .to(at::kFloat)
                  .reshape({1, old_grid.h, old_grid.w, dim})
                  .permute({0, 3, 1, 2});  // (1, D, old.h, old.w)
  // F.interpolate(mode="bicubic", antialias=True, align_corners=None) with an explicit size calls this op
  // with align_corners=false and no scale factors.
  grid = at::_upsample_bicubic2d_aa(grid, {new_grid.h, new_grid.w}, /*align_corners=*/false);
  grid = grid.permute({0, 2, 3, 1}).reshape({1, new_grid.h * new_grid.w, dim}).to(posemb.scalar_type());
  return num_prefix_tokens > 0 ? at::cat({prefix, grid}, 1) : grid;
}

}  // namespace semaim::models

// ViTDet's plain ViT backbone: window / global attention with decomposed relative positions and the resampled
// absolute table (detectron2 modeling/backbone/vit.py ViT, Block, Attention; utils.py helpers).
#include "semaim/models/vitdet.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

// detectron2 ViT._init_weights: trunc_normal_(std=0.02) whose bounds (absolute +-2) lie 100 std out, so a
// plain normal; zero bias.
void init_vitdet_linear_(torch::nn::Linear& lin) {
  torch::NoGradGuard no_grad;
  lin->weight.normal_(0.0, 0.02);
  if (lin->bias.defined()) lin->bias.zero_();
}

}  // namespace

bool VitDetConfig::is_global(int64_t block) const {
  return window_size == 0 ||
         std::find(global_blocks.begin(), global_blocks.end(), block) != global_blocks.end();
}

int64_t VitDetConfig::rel_pos_side(int64_t block) const {
  return is_global(block) ? input_size / vit.patch_size : window_size;
}

void VitDetConfig::validate(const std::string& where) const {
  vit.validate(where);
  if (input_size <= 0 || input_size % vit.patch_size != 0)
    throw InputError(where + ".input_size", "must be a positive multiple of patch_size " +
                                                std::to_string(vit.patch_size) + ", got " +
                                                std::to_string(input_size));
  if (window_size < 0)
    throw InputError(where + ".window_size",
                     "must be positive (0 = every block global), got " + std::to_string(window_size));
  std::set<int64_t> seen;
  for (int64_t i : global_blocks) {
    if (i < 0 || i >= vit.depth)
      throw InputError(where + ".global_blocks",
                       "block " + std::to_string(i) + " outside 0.." + std::to_string(vit.depth - 1));
    if (!seen.insert(i).second)
      throw InputError(where + ".global_blocks", "block " + std::to_string(i) + " is listed twice");
  }
}

// x: (B, H, W, C) -> windows (B * nWindows, ws, ws, C), padded grid
std::pair<at::Tensor, Grid> window_partition(const at::Tensor& x, int64_t ws) {
  const int64_t b = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
  const int64_t pad_h = (ws - h % ws) % ws, pad_w = (ws - w % ws) % ws;
  const at::Tensor padded = pad_h > 0 || pad_w > 0 ? at::constant_pad_nd(x, {0, 0, 0, pad_w, 0, pad_h}) : x;
  const Grid hp{h + pad_h, w + pad_w};
  auto windows = padded.reshape({b, hp.h / ws, ws, hp.w / ws, ws, c})
                     .permute({0, 1, 3, 2, 4, 5})
                     .reshape({-1, ws, ws, c});
  return {windows, hp};
}

// windows: (B * nWindows, ws, ws, C) -> (B, hw.h, hw.w, C)
at::Tensor window_unpartition(const at::Tensor& windows, int64_t ws, Grid padded, Grid hw) {
  const int64_t b = windows.size(0) / (padded.h * padded.w / ws / ws);
  auto x = windows.reshape({b, padded.h / ws, padded.w / ws, ws, ws, -1})
               .permute({0, 1, 3, 2, 4, 5})
               .reshape({b, padded.h, padded.w, -1});
  if (padded.h > hw.h || padded.w > hw.w) x = x.narrow(1, 0, hw.h).narrow(2, 0, hw.w).contiguous();
  return x;
}

// rel_pos: (L, C) -> (q_size, k_size, C)
at::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const at::Tensor& rel_pos) {
  const int64_t max_rel_dist = 2 * std::max(q_size, k_size) - 1;
  at::Tensor table = rel_pos;
  if (rel_pos.size(0) != max_rel_dist)  // (L, C) -> (1, C, L) -> (1, C, max) -> (max, C)
    table = at::upsample_linear1d(rel_pos.t().unsqueeze(0), {max_rel_dist}, /*align_corners=*/false)
                .squeeze(0)
                .t();
  // Offsets in float32 as detectron2 computes them, the shorter side's coordinates stretched to the longer
  // one.
  const double q_scale = std::max(static_cast<double>(k_size) / static_cast<double>(q_size), 1.0);
  const double k_scale = std::max(static_cast<double>(q_size) / static_cast<double>(k_size), 1.0);
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(rel_pos.device());
  const at::Tensor q_coords = at::arange(q_size, f32).unsqueeze(1) * q_scale;
  const at::Tensor k_coords = at::arange(k_size, f32).unsqueeze(0) * k_scale;
  const at::Tensor rel = ((q_coords - k_coords) + static_cast<double>(k_size - 1) * k_scale).to(at::kLong);
  return table.index_select(0, rel.flatten()).reshape({q_size, k_size, table.size(1)});
}

// q: (B, qh*qw, C), rel_pos_h: (Lh, C), rel_pos_w: (Lw, C) -> (B, qh*qw, kh*kw)
at::Tensor decomposed_rel_pos_bias(const at::Tensor& q, const at::Tensor& rel_pos_h,
                                   const at::Tensor& rel_pos_w, Grid q_size, Grid k_size) {
  const at::Tensor rh = get_rel_pos(q_size.h, k_size.h, rel_pos_h).to(q.scalar_type());  // (qh, kh, C)
  const at::Tensor rw = get_rel_pos(q_size.w, k_size.w, rel_pos_w).to(q.scalar_type());  // (qw, kw, C)
  const int64_t b = q.size(0);
  const at::Tensor r_q = q.reshape({b, q_size.h, q_size.w, q.size(2)});
  const at::Tensor rel_h = at::einsum("bhwc,hkc->bhwk", {r_q, rh});  // (B, qh, qw, kh)
  const at::Tensor rel_w = at::einsum("bhwc,wkc->bhwk", {r_q, rw});  // (B, qh, qw, kw)
  return (rel_h.unsqueeze(4) + rel_w.unsqueeze(3)).reshape({b, q_size.h * q_size.w, k_size.h * k_size.w});
}

// abs_pos: (1, [1 +] table.h*table.w, C) -> (1, hw.h, hw.w, C)
at::Tensor get_abs_pos(const at::Tensor& abs_pos, bool has_cls, Grid table_grid, Grid hw) {
  const at::Tensor pos = has_cls ? abs_pos.narrow(1, 1, abs_pos.size(1) - 1) : abs_pos;
  if (pos.dim() != 3 || pos.size(1) != table_grid.h * table_grid.w)
    throw InputError("pos_embed", "expected (1, " + std::string(has_cls ? "1 + " : "") +
                                      std::to_string(table_grid.h) + "*" + std::to_string(table_grid.w) +
                                      ", C), got " + c10::str(abs_pos.sizes()));
  const int64_t c = pos.size(2);
  if (table_grid == hw) return pos.reshape({1, hw.h, hw.w, c});
  const at::Tensor grid = pos.reshape({1, table_grid.h, table_grid.w, c}).permute({0, 3, 1, 2});
  return at::upsample_bicubic2d(grid, {hw.h, hw.w}, /*align_corners=*/false).permute({0, 2, 3, 1});
}

VitDetAttentionImpl::VitDetAttentionImpl(int64_t dim, int64_t heads, bool use_rel_pos, int64_t rel_pos_side)
    : num_heads(heads) {
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  init_vitdet_linear_(qkv);
  init_vitdet_linear_(proj);
  if (use_rel_pos) {
    rel_pos_h = register_parameter("rel_pos_h", at::zeros({2 * rel_pos_side - 1, dim / heads}));
    rel_pos_w = register_parameter("rel_pos_w", at::zeros({2 * rel_pos_side - 1, dim / heads}));
  }
}

// x: (B, H, W, D) -> (B, H, W, D)
at::Tensor VitDetAttentionImpl::forward(const at::Tensor& x) {
  const int64_t b = x.size(0), h = x.size(1), w = x.size(2), d = x.size(3), l = h * w;
  // (B, H, W, 3D) -> (3, B, heads, L, E)
  const at::Tensor qkv_t =
      linear(qkv, x).reshape({b, l, 3, num_heads, d / num_heads}).permute({2, 0, 3, 1, 4}).contiguous();
  const at::Tensor q = qkv_t[0], k = qkv_t[1], v = qkv_t[2];
  std::optional<at::Tensor> bias;
  if (rel_pos_h.defined())  // from the unscaled queries, as detectron2
    bias = decomposed_rel_pos_bias(q.reshape({b * num_heads, l, -1}), rel_pos_h, rel_pos_w, {h, w}, {h, w})
               .reshape({b, num_heads, l, l})
               .to(q.scalar_type());
  const at::Tensor out = at::scaled_dot_product_attention(q, k, v, bias);  // (B, heads, L, E)
  return linear(proj, out.transpose(1, 2).reshape({b, h, w, d}));
}

VitDetBlockImpl::VitDetBlockImpl(int64_t dim, int64_t heads, int64_t mlp_hidden, double drop_rate,
                                 int64_t window, bool use_rel_pos, int64_t rel_pos_side)
    : window_size(window), drop_path_rate(drop_rate) {
  norm1 = register_module("norm1", make_layer_norm(dim));
  attn = register_module("attn", VitDetAttention(dim, heads, use_rel_pos, rel_pos_side));
  norm2 = register_module("norm2", make_layer_norm(dim));
  mlp = register_module("mlp", Mlp(dim, mlp_hidden, dim));
  init_vitdet_linear_(mlp->fc1);
  init_vitdet_linear_(mlp->fc2);
}

// x: (N, H, W, D) -> (N, H, W, D)
at::Tensor VitDetBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = norm1(x);
  if (window_size > 0) {
    // Padding follows the norm, so padded tokens are zeros that windows at the border also attend to.
    const Grid hw{x.size(1), x.size(2)};
    auto [windows, padded] = window_partition(h, window_size);
    h = window_unpartition(attn(windows), window_size, padded, hw);
  } else {
    h = attn(h);
  }
  const at::Tensor y = x + drop_path(h, drop_path_rate, is_training());
  return y + drop_path(mlp(norm2(y)), drop_path_rate, is_training());
}

VitDetBackboneImpl::VitDetBackboneImpl(const VitDetConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  const VitConfig& v = cfg_.vit;
  const int64_t d = v.embed_dim;
  cls_token = register_parameter("cls_token", at::zeros({1, 1, d}), /*requires_grad=*/false);
  pos_embed = register_parameter("pos_embed", at::zeros({1, 1 + v.num_patches(), d}));
  patch_embed = register_module("patch_embed", PatchEmbed(v.in_chans, d, v.patch_size));
  patch_embed->proj->reset_parameters();  // detectron2 leaves the patch conv at PyTorch's default init
  blocks_list_ = register_module("blocks", torch::nn::ModuleList());
  const std::vector<double> dpr = drop_path_rates(v.drop_path_rate, v.depth);
  for (int64_t i = 0; i < v.depth; ++i) {
    blocks_.emplace_back(d, v.num_heads, v.mlp_hidden(), dpr[static_cast<size_t>(i)],
                         cfg_.is_global(i) ? 0 : cfg_.window_size, cfg_.use_rel_pos, cfg_.rel_pos_side(i));
    blocks_list_->push_back(blocks_.back());
  }
  torch::NoGradGuard no_grad;
  pos_embed.normal_(0.0, 0.02);  // detectron2: trunc_normal_(std=0.02), bounds +-2
  if (cfg_.sincos_abs_pos) pos_embed.set_requires_grad(false);
}

// images: (N, C, H, W) -> (N, D, H/p, W/p)
at::Tensor VitDetBackboneImpl::forward(const at::Tensor& images) {
  const VitConfig& v = cfg_.vit;
  const int64_t p = v.patch_size;
  if (images.dim() != 4 || images.size(1) != v.in_chans || images.size(2) < p || images.size(3) < p ||
      images.size(2) % p != 0 || images.size(3) % p != 0)
    throw InputError("model input", "expected images (N, " + std::to_string(v.in_chans) +
                                        ", H, W) with H and W positive multiples of patch_size " +
                                        std::to_string(p) + ", got " + c10::str(images.sizes()));
  const Grid g{images.size(2) / p, images.size(3) / p};
  at::Tensor x = patch_embed(images).reshape({images.size(0), g.h, g.w, v.embed_dim});
  if (cfg_.sincos_abs_pos) {
    const at::Tensor table = sincos_pos_embed_2d(v.embed_dim, g.h, g.w, at::kFloat).to(x.device());
    x = x + table.narrow(1, 1, g.h * g.w).reshape({1, g.h, g.w, v.embed_dim});
  } else {
    x = x + get_abs_pos(pos_embed, /*has_cls=*/true, v.grid(), g);
  }
  for (auto& blk : blocks_) x = blk(x);
  return x.permute({0, 3, 1, 2}).contiguous();
}

}  // namespace semaim::models

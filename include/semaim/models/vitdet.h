// ViTDet's plain ViT backbone (Li et al. 2022 §3; detectron2 modeling/backbone/vit.py ViT and utils.py
// window_partition, get_rel_pos, add_decomposed_rel_pos, get_abs_pos), with timm's parameter names.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "semaim/models/layers.h"
#include "semaim/models/vit.h"

namespace semaim::models {

struct VitDetConfig {
  // The encoder. vit.img_size (or img_h / img_w) is the grid the position table is stored at, the pretraining
  // size (detectron2 pretrain_img_size); inputs may be any multiple of the patch size, the table is
  // resampled. vit.learnable_pos_embed and vit.dynamic_img_size are not read: the table is always learned,
  // any size runs.
  VitConfig vit;
  // The detection input size (detectron2 img_size): it sets the length of a global block's rel-pos tables.
  int64_t input_size = 1024;
  int64_t window_size = 14;
  // Blocks attending over the whole grid; every other block attends within windows.
  std::vector<int64_t> global_blocks{2, 5, 8, 11};
  bool use_rel_pos = true;
  // false (detectron2): the learned table, resampled bicubically from vit's grid to the input's. true: MAE's
  // fixed 2-D sin-cos table computed at the input's grid, one position unit per patch, as a sin-cos-pretrained
  // encoder (semaim's default, learnable_pos_embed false) saw it; the pos_embed parameter is then frozen and
  // unused, kept so a pretrained state dict loads unchanged. Resampling a 7x7 sin-cos table to 16x16 instead
  // squeezes 2.3 patches into one pretraining position step.
  bool sincos_abs_pos = false;

  bool is_global(int64_t block) const;
  // The side S of a block's attention grid, so its rel-pos tables are (2*S-1, head_dim): the window for
  // window blocks, input_size / patch_size for global ones.
  int64_t rel_pos_side(int64_t block) const;
  // Throws InputError naming `where` and the offending field.
  void validate(const std::string& where = "model") const;
};

// Splits a grid into non-overlapping windows, zero-padding the bottom and right to a multiple of the window.
// x: (B, H, W, C) -> windows (B * nWindows, ws, ws, C), padded grid (Hp, Wp)
std::pair<at::Tensor, Grid> window_partition(const at::Tensor& x, int64_t window_size);

// The inverse of window_partition, the padding cut off.
// windows: (B * nWindows, ws, ws, C) -> (B, hw.h, hw.w, C)
at::Tensor window_unpartition(const at::Tensor& windows, int64_t window_size, Grid padded, Grid hw);

// detectron2 get_rel_pos: the table linearly resampled (align_corners false) to 2*max(q, k)-1 rows when its
// length differs, then gathered at each (query, key) offset, scaled to the longer side when q != k.
// rel_pos: (L, C) -> (q_size, k_size, C)
at::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const at::Tensor& rel_pos);

// The term detectron2 add_decomposed_rel_pos adds to the attention logits (MViTv2's decomposed relative
// position): bias[b, (i, j), (k, l)] = q[b, (i, j)] . Rh[i, k] + q[b, (i, j)] . Rw[j, l].
// q: (B, qh*qw, C), rel_pos_h: (Lh, C), rel_pos_w: (Lw, C) -> (B, qh*qw, kh*kw)
at::Tensor decomposed_rel_pos_bias(const at::Tensor& q, const at::Tensor& rel_pos_h,
                                   const at::Tensor& rel_pos_w, Grid q_size, Grid k_size);

// detectron2 get_abs_pos: the cls row dropped (when has_cls), the table_grid part resized to hw bicubically
// (no antialias, align_corners false) when the grids differ. detectron2 assumes a square table; here its
// grid is given. abs_pos: (1, [1 +] table.h*table.w, C) -> (1, hw.h, hw.w, C)
at::Tensor get_abs_pos(const at::Tensor& abs_pos, bool has_cls, Grid table_grid, Grid hw);

// detectron2 vit.Attention with timm's names (qkv, proj) and, when use_rel_pos, rel_pos_h / rel_pos_w of
// (2*S-1, head_dim), zero-initialized. detectron2 computes softmax(q*scale @ k^T + bias) @ v explicitly; here
// the same attention runs through SDPA, the rel-pos bias as an additive float mask.
class VitDetAttentionImpl : public torch::nn::Module {
 public:
  VitDetAttentionImpl(int64_t dim, int64_t num_heads, bool use_rel_pos, int64_t rel_pos_side);
  // x: (B, H, W, D) -> (B, H, W, D)
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  at::Tensor rel_pos_h, rel_pos_w;  // undefined without rel pos
  int64_t num_heads;
};
TORCH_MODULE(VitDetAttention);

// detectron2 vit.Block: pre-norm block whose attention runs within windows (window_size > 0, the grid padded
// to a multiple of it) or over the whole grid (window_size 0); timm's Mlp and drop path on both branches.
class VitDetBlockImpl : public torch::nn::Module {
 public:
  VitDetBlockImpl(int64_t dim, int64_t num_heads, int64_t mlp_hidden, double drop_rate, int64_t window_size,
                  bool use_rel_pos, int64_t rel_pos_side);
  // x: (N, H, W, D) -> (N, H, W, D)
  at::Tensor forward(const at::Tensor& x);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  VitDetAttention attn{nullptr};
  Mlp mlp{nullptr};
  int64_t window_size;
  double drop_path_rate;
};
TORCH_MODULE(VitDetBlock);

// detectron2 ViT (pretrain_use_cls_token: the position table keeps its cls row) with timm's keys: cls_token
// (held only so a timm / semaim encoder state dict loads unchanged; never used, so it takes no gradient),
// pos_embed, patch_embed.proj, blocks.i.{norm1, attn.{qkv, proj, rel_pos_h, rel_pos_w}, norm2, mlp.fc1/fc2}.
// No final norm: the last block's output is the feature, as detectron2's.
class VitDetBackboneImpl : public torch::nn::Module {
 public:
  explicit VitDetBackboneImpl(const VitDetConfig& cfg);
  // images: (N, C, H, W), H and W multiples of the patch size -> (N, D, H/p, W/p)
  at::Tensor forward(const at::Tensor& images);
  const VitDetConfig& config() const { return cfg_; }
  int64_t depth() const { return static_cast<int64_t>(blocks_.size()); }
  const VitDetBlock& block(int64_t i) const { return blocks_.at(static_cast<size_t>(i)); }

  at::Tensor cls_token, pos_embed;
  PatchEmbed patch_embed{nullptr};

 private:
  VitDetConfig cfg_;
  torch::nn::ModuleList blocks_list_{nullptr};
  std::vector<VitDetBlock> blocks_;
};
TORCH_MODULE(VitDetBackbone);

}  // namespace semaim::models

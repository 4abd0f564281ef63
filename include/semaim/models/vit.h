// Plain ViT encoder with timm's parameter names, plus the fixed 2D sin-cos table (method.md §3; timm
// vision_transformer.VisionTransformer, MAE util/pos_embed.get_2d_sincos_pos_embed).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "semaim/models/layers.h"

namespace semaim::models {

struct VitConfig {
  int64_t img_size = 224, patch_size = 16, in_chans = 3, embed_dim = 768, depth = 12, num_heads = 12;
  double mlp_ratio = 4.0;
  // Non-square inputs: a positive value overrides img_size for that side (0 = img_size).
  int64_t img_h = 0, img_w = 0;
  // Stochastic depth: per-block rates rise linearly from 0 to drop_path_rate (timm's dpr).
  double drop_path_rate = 0.0;
  // method.md §3: the sin-cos table is frozen in pretraining; fine-tuning learns it (timm's learnable
  // pos_embed).
  bool learnable_pos_embed = false;
  // timm dynamic_img_size: any multiple of patch_size, the position table resampled to the input's grid.
  bool dynamic_img_size = false;

  int64_t height() const { return img_h > 0 ? img_h : img_size; }
  int64_t width() const { return img_w > 0 ? img_w : img_size; }
  int64_t grid_h() const { return height() / patch_size; }
  int64_t grid_w() const { return width() / patch_size; }
  Grid grid() const { return {grid_h(), grid_w()}; }
  int64_t num_patches() const { return grid_h() * grid_w(); }
  int64_t head_dim() const { return embed_dim / num_heads; }
  int64_t mlp_hidden() const { return static_cast<int64_t>(static_cast<double>(embed_dim) * mlp_ratio); }
  // Throws InputError naming `where` and the offending field.
  void validate(const std::string& where = "model") const;
};

// Fixed 2D sin-cos table, MAE layout: first dim/2 channels encode the column, the rest the row; row 0
// (cls) is zeros. Computed in float64.
// -> (1, 1 + gh*gw, dim) float32 (or `dtype`)
at::Tensor sincos_pos_embed_2d(int64_t dim, int64_t gh, int64_t gw, at::ScalarType dtype = at::kFloat);

// LayerNorm with the ViT epsilon (1e-6).
torch::nn::LayerNorm make_layer_norm(int64_t dim);

// timm Mlp: fc1 -> exact GELU -> fc2.
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t in, int64_t hidden, int64_t out);
  // x: (..., in) -> (..., out)
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// softmax(q k^T / sqrt(E) + mask) v with SDPA's mask conventions (bool mask: true = take part; causal: top-left
// aligned). On the CPU under bf16 autocast it is attention_matmul, whose batched GEMMs run on the bf16 units; ATen's
// CPU SDPA kernels run at fp32 speed there (3-9x slower, bench_attention). Elsewhere, fp32 on the CPU included
// (where the two forms are within about 10% of each other), it is at::scaled_dot_product_attention. q: (N, h, Tq, E), k/v: (N, h, Tk, E), mask: (N or 1, 1, Tq, Tk) -> (N, h, Tq, E)
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const std::optional<at::Tensor>& mask = std::nullopt, bool causal = false);

// lin(x) as ATen's linear: one addmm with the bias fused for 2-D and contiguous 3-D inputs. The C++ frontend's
// torch::nn::Linear::forward computes (..., in) inputs of more than 2 dims as matmul and then an in-place bias add,
// a second pass over the output. x: (..., in) -> (..., out)
at::Tensor linear(const torch::nn::Linear& lin, const at::Tensor& x);

// attention() as batched GEMMs around a softmax, whatever the device and autocast state: scores = causal bias +
// scale * q k^T in one baddbmm (no elementwise pass over the scores), a bool mask applied with masked_fill, the
// softmax in the scores' dtype (ATen keeps its row max and sum in fp32 for bf16), then probabilities @ v. The form
// attention() takes on the CPU under bf16 autocast.
at::Tensor attention_matmul(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const std::optional<at::Tensor>& mask = std::nullopt, bool causal = false);

// Multi-head self-attention with a fused qkv Linear (timm Attention). Either a bool mask (true = take
// part), causal (top-left aligned), or neither (bidirectional).
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t num_heads);
  // x: (N, T, D), mask: (N or 1, 1, T, T) bool -> (N, T, D)
  at::Tensor forward(const at::Tensor& x, const std::optional<at::Tensor>& mask = std::nullopt,
                     bool causal = false);
  // The bidirectional attention probabilities softmax(q k^T * head_dim^-0.5) that forward (no mask) weighs
  // v with, for pictures; forward itself runs SDPA and never forms them. x: (N, T, D) -> (N, heads, T, T)
  at::Tensor probabilities(const at::Tensor& x);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  int64_t num_heads;
};
TORCH_MODULE(Attention);

// Pre-norm transformer block (timm Block), with drop path on both residual branches when drop_rate > 0.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t num_heads, int64_t mlp_hidden, double drop_rate = 0.0);
  // With `recompute` set, a training call with grad keeps only x and recomputes the block in the backward
  // pass (models/recompute.h); the result and the gradients are those of the plain block.
  // x: (N, T, D) -> (N, T, D)
  at::Tensor forward(const at::Tensor& x, const std::optional<at::Tensor>& mask = std::nullopt,
                     bool causal = false);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  double drop_path_rate;
  bool recompute = false;  // activation checkpointing (a runtime switch, not in the state dict)

 private:
  // x: (N, T, D) -> (N, T, D)
  at::Tensor forward_block(const at::Tensor& x, const std::optional<at::Tensor>& mask, bool causal);
};
TORCH_MODULE(Block);

// Holds `proj` so the conv's keys read `patch_embed.proj.*` as in timm.
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_chans, int64_t dim, int64_t patch);
  // imgs: (N, C, H, W) -> (N, L, D), patches row-major
  at::Tensor forward(const at::Tensor& imgs);
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

// timm's `indices` of forward_intermediates: an int n = the last n blocks; a list = those blocks (negative
// counts from the end); monostate (timm's None) = every block.
using BlockIndices = std::variant<std::monostate, int64_t, std::vector<int64_t>>;

// Absolute block indices in the given order (timm feature_take_indices); out of range -> InputError.
std::vector<int64_t> take_block_indices(int64_t depth, const BlockIndices& indices);

enum class FeatureFormat { kNCHW, kNLC };

// The arguments of timm's VisionTransformer.forward_intermediates.
struct IntermediatesOptions {
  BlockIndices indices;
  bool norm = false;  // apply the final norm to every intermediate
  FeatureFormat output_fmt = FeatureFormat::kNCHW;
  bool return_prefix_tokens = false;  // also return each intermediate's cls token
  bool intermediates_only = false;    // skip the final norm (features stays undefined)
  bool stop_early = false;            // run no block past the last one taken
};

struct Intermediates {
  at::Tensor features;                    // final-normed tokens of the last block run, (N, 1+L, D)
  std::vector<at::Tensor> intermediates;  // block outputs, cls removed: (N, D, gh, gw) NCHW or (N, L, D) NLC
  std::vector<at::Tensor> prefix_tokens;  // their cls tokens (N, 1, D), when return_prefix_tokens
};

// timm-named ViT encoder: cls_token, pos_embed, patch_embed.proj, blocks.i.*, norm.
class VitEncoderImpl : public torch::nn::Module {
 public:
  explicit VitEncoderImpl(const VitConfig& cfg);
  // Bidirectional (no mask) pass + final norm. imgs: (N, C, H, W) -> (N, L+1, D)
  at::Tensor forward_features(const at::Tensor& imgs);
  // timm forward_intermediates: block outputs of the chosen blocks and the final normed tokens.
  // imgs: (N, C, H, W) -> features (N, L+1, D), intermediates (N, D, gh, gw) or (N, L, D) each
  Intermediates forward_intermediates(const at::Tensor& imgs, const IntermediatesOptions& opts = {});
  // forward_features (the same ops, so the same tokens) plus the last block's attention probabilities.
  // imgs: (N, C, H, W) -> tokens (N, L+1, D), probabilities (N, heads, L+1, L+1)
  std::pair<at::Tensor, at::Tensor> encode_with_attention(const at::Tensor& imgs);
  // The position table for a gh x gw grid: the stored one at the configured grid, else resampled (timm).
  // -> (1, 1 + g.h*g.w, D)
  at::Tensor pos_embed_for(Grid g) const;
  const VitConfig& vit_config() const { return vit_cfg_; }
  int64_t depth() const { return static_cast<int64_t>(blocks_.size()); }
  const Block& block(int64_t i) const { return blocks_.at(static_cast<size_t>(i)); }
  const torch::nn::LayerNorm& final_norm() const { return norm_; }
  const at::Tensor& cls_token() const { return cls_token_; }
  const at::Tensor& pos_embed() const { return pos_embed_; }
  // Activation checkpointing (train.checkpoint_blocks): the first n blocks (all when n >= depth, none when 0)
  // keep only their inputs in training and recompute in the backward pass. A runtime switch: parameters and
  // the state dict are unchanged. n < 0 -> InputError.
  virtual void set_checkpoint_blocks(int64_t n);
  int64_t checkpoint_blocks() const { return checkpoint_blocks_; }

 protected:
  // Throws InputError unless imgs is (N, C, H, W) of the configured size.
  void check_images(const at::Tensor& imgs) const;
  // The patch grid of imgs: check_images, or with dynamic_img_size any (N, C, H, W) whose sides are positive
  // multiples of patch_size (else InputError).
  Grid input_grid(const at::Tensor& imgs) const;
  // Patch tokens plus their positions, natural order. imgs: (N, C, H, W) -> (N, L, D)
  at::Tensor embed_patches(const at::Tensor& imgs);
  // cls token plus position 0. -> (1, 1, D)
  at::Tensor cls_with_pos() const;
  // [cls + pos0 ; patches + pos1..L], natural order. imgs: (N, C, H, W) -> (N, L+1, D)
  at::Tensor embed(const at::Tensor& imgs);

  VitConfig vit_cfg_;
  at::Tensor cls_token_, pos_embed_;
  PatchEmbed patch_embed_{nullptr};
  torch::nn::ModuleList blocks_list_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::LayerNorm norm_{nullptr};
  int64_t checkpoint_blocks_ = 0;
};
TORCH_MODULE(VitEncoder);

// Xavier-uniform weight, zero bias (method.md §3 init for every Linear).
void init_linear_(torch::nn::Linear& lin);

}  // namespace semaim::models

// Two-stream autoregressive image model (SemAIM/SAIM AimViT, method.md §3-4): a ViT content stream and a
// cross-attention-only query stream; sorted-causal SDPA by default, the reference dense masks on request.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "semaim/models/targets.h"
#include "semaim/models/vit.h"

namespace semaim::models {

struct AimConfig {
  VitConfig vit;
  int64_t decoder_depth = 12;
  std::string head = "mlp";          // "mlp" (Linear D->4D, GELU, Linear 4D->out) or "linear"
  // "causal": sorted tokens + SDPA is_causal (method.md §4); "dense": the reference masks.
  std::string attention = "causal";
  // The prediction width for feature targets (the target tokens' width); 0 = pixels, p*p*C.
  int64_t target_dim = 0;

  int64_t step() const { return vit.depth / decoder_depth; }
  int64_t out_dim() const {
    return target_dim > 0 ? target_dim : vit.patch_size * vit.patch_size * vit.in_chans;
  }
  // Throws InputError naming `where` and the offending field.
  void validate(const std::string& where = "model") const;
};

// Cross-attention with separate q, k, v, proj (reference Attention_SelfCrossMask).
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t dim, int64_t num_heads);
  // q_in: (N, Tq, D), kv_in: (N, Tk, D), mask: (N or 1, 1, Tq, Tk) bool -> (N, Tq, D)
  at::Tensor forward(const at::Tensor& q_in, const at::Tensor& kv_in,
                     const std::optional<at::Tensor>& mask = std::nullopt, bool causal = false);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, proj{nullptr};
  int64_t num_heads;
};
TORCH_MODULE(CrossAttention);

// Query-stream block: g + CrossAttn(LN1(g), LN1(h)), then g + MLP(LN2(g)); one LN1 for both sides.
class DecoderBlockImpl : public torch::nn::Module {
 public:
  DecoderBlockImpl(int64_t dim, int64_t num_heads, int64_t mlp_hidden);
  // With `recompute` set, a training call with grad keeps only g and h and recomputes the block in the
  // backward pass (models/recompute.h). g: (N, Tq, D), h: (N, Tk, D) -> (N, Tq, D)
  at::Tensor forward(const at::Tensor& g, const at::Tensor& h,
                     const std::optional<at::Tensor>& mask = std::nullopt, bool causal = false);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  CrossAttention attn{nullptr};
  Mlp mlp{nullptr};
  bool recompute = false;  // activation checkpointing (a runtime switch, not in the state dict)

 private:
  // g: (N, Tq, D), h: (N, Tk, D) -> (N, Tq, D)
  at::Tensor forward_block(const at::Tensor& g, const at::Tensor& h, const std::optional<at::Tensor>& mask,
                           bool causal);
};
TORCH_MODULE(DecoderBlock);

// Reference masks over [cls ; natural patches] (method.md §4), true = may attend.
// keys: (N, L) -> pair of (N, 1, L+1, L+1) bool: Mh (key_j <= key_i), Mg (key_j < key_i)
std::pair<at::Tensor, at::Tensor> dense_masks(const at::Tensor& keys);

// Sorting permutation of keys and its inverse. keys: (N, L) -> (order, inverse), both (N, L) int64
std::pair<at::Tensor, at::Tensor> order_from_keys(const at::Tensor& keys);

class AimVitImpl : public VitEncoderImpl {
 public:
  explicit AimVitImpl(const AimConfig& cfg);
  // Bidirectional encoder + final norm (semantic-permutation source, probe features).
  // imgs: (N, C, H, W) -> (N, L+1, D)
  at::Tensor encode(const at::Tensor& imgs);
  // Two-stream prediction under per-patch keys (smaller = earlier), natural patch order, cls dropped.
  // imgs: (N, C, H, W), keys: (N, L) -> (N, L, p*p*C); query j predicts patch j
  at::Tensor forward(const at::Tensor& imgs, const at::Tensor& keys);
  // forward with a precomputed order = argsort(keys) and its inverse (both (N, L) int64).
  // imgs: (N, C, H, W), keys/order/inverse: (N, L) -> (N, L, p*p*C)
  at::Tensor forward_ordered(const at::Tensor& imgs, const at::Tensor& keys, const at::Tensor& order,
                             const at::Tensor& inverse);
  // imgs: (N, C, H, W) -> (N, L, p*p*C)
  at::Tensor patchify(const at::Tensor& imgs) const;
  // x: (N, L, p*p*C) -> (N, C, H, W)
  at::Tensor unpatchify(const at::Tensor& x) const;
  // Pixel loss (method.md §7) of the prediction under keys. imgs: (N, C, H, W), keys: (N, L) -> scalar
  at::Tensor forward_loss(const at::Tensor& imgs, const at::Tensor& keys, const TargetConfig& tcfg);
  // forward_loss under a precomputed permutation (the engine's ordering::make_order): no re-sort of rank
  // keys; the dense form rebuilds its masks from the ranks (inverse). imgs: (N, C, H, W), order/inverse:
  // (N, L) int64 -> scalar
  at::Tensor forward_loss_ordered(const at::Tensor& imgs, const at::Tensor& order, const at::Tensor& inverse,
                                  const TargetConfig& tcfg);
  // Feature-target loss (method.md §7, reference forward_feature_loss) under a precomputed permutation: the
  // prediction of patch j against the target token 1+j (the target's cls token is dropped).
  // imgs: (N, C, H, W), order/inverse: (N, L) int64, target: (N, L+1, K) -> scalar
  at::Tensor forward_feature_loss_ordered(const at::Tensor& imgs, const at::Tensor& order,
                                          const at::Tensor& inverse, const at::Tensor& target);
  const AimConfig& config() const { return cfg_; }
  int64_t decoder_depth() const { return static_cast<int64_t>(query_blocks_.size()); }
  // The first n blocks of each stack (encoder blocks, query-stream blocks) checkpointed; see VitEncoderImpl.
  void set_checkpoint_blocks(int64_t n) override;
  // True for encoder parameters/buffers (timm keys: cls_token, pos_embed, patch_embed.*, blocks.*, norm.*).
  static bool is_encoder_key(const std::string& name);

 private:
  void check_keys(const at::Tensor& keys, int64_t n) const;
  // Sorted-causal fast form. imgs: (N, C, H, W), order/inverse: (N, L) -> (N, L, out)
  at::Tensor forward_causal(const at::Tensor& imgs, const at::Tensor& order, const at::Tensor& inverse);
  // Reference dense-mask form. imgs: (N, C, H, W), keys: (N, L) -> (N, L, out)
  at::Tensor forward_dense(const at::Tensor& imgs, const at::Tensor& keys);
  // Final norm + head. g: (N, T, D) -> (N, T, out)
  at::Tensor predict(const at::Tensor& g);

  AimConfig cfg_;
  torch::nn::ModuleList query_blocks_list_{nullptr};
  std::vector<DecoderBlock> query_blocks_;
  Mlp head_mlp_{nullptr};
  torch::nn::Linear head_linear_{nullptr};
};
TORCH_MODULE(AimVit);

}  // namespace semaim::models

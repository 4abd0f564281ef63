// Two-stream AIM model (method.md §3-4; reference AimViT.forward_aim with Block_SelfMask /
// Block_SelfCrossMask). Default path: sort tokens by key, then both streams are plain causal SDPA; "dense"
// keeps the reference masks.
#include "semaim/models/aim.h"

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "kernels/permute_rows/permute_rows.h"
#include "semaim/core/errors.h"
#include "semaim/models/recompute.h"

namespace semaim::models {

void AimConfig::validate(const std::string& where) const {
  vit.validate(where);
  if (decoder_depth <= 0 || decoder_depth > vit.depth || vit.depth % decoder_depth != 0)
    throw InputError(where + ".decoder_depth", "must divide depth " + std::to_string(vit.depth) + ", got " +
                                                   std::to_string(decoder_depth));
  if (head != "mlp" && head != "linear")
    throw InputError(where + ".head", "unknown head '" + head + "' (expected mlp or linear)");
  if (attention != "causal" && attention != "dense")
    throw InputError(where + ".attention",
                     "unknown attention '" + attention + "' (expected causal or dense)");
  if (target_dim < 0)
    throw InputError(where + ".target_dim", "must be >= 0, got " + std::to_string(target_dim));
}

CrossAttentionImpl::CrossAttentionImpl(int64_t dim, int64_t heads) : num_heads(heads) {
  q = register_module("q", torch::nn::Linear(dim, dim));
  k = register_module("k", torch::nn::Linear(dim, dim));
  v = register_module("v", torch::nn::Linear(dim, dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  for (auto* lin : {&q, &k, &v, &proj}) init_linear_(*lin);
}

// q_in: (N, Tq, D), kv_in: (N, Tk, D) -> (N, Tq, D)
at::Tensor CrossAttentionImpl::forward(const at::Tensor& q_in, const at::Tensor& kv_in,
                                       const std::optional<at::Tensor>& mask, bool causal) {
  const int64_t n = q_in.size(0), tq = q_in.size(1), tk = kv_in.size(1), d = q_in.size(2);
  const int64_t e = d / num_heads;
  // (N, T, D) -> contiguous (N, heads, T, E), the layout the CPU flash kernels run fastest on.
  auto heads = [&](const at::Tensor& x, int64_t t) {
    return x.view({n, t, num_heads, e}).transpose(1, 2).contiguous();
  };
  auto out = attention(heads(linear(q, q_in), tq), heads(linear(k, kv_in), tk), heads(linear(v, kv_in), tk), mask,
                       causal);
  return linear(proj, out.transpose(1, 2).reshape({n, tq, d}));
}

DecoderBlockImpl::DecoderBlockImpl(int64_t dim, int64_t heads, int64_t mlp_hidden) {
  norm1 = register_module("norm1", make_layer_norm(dim));
  attn = register_module("attn", CrossAttention(dim, heads));
  norm2 = register_module("norm2", make_layer_norm(dim));
  mlp = register_module("mlp", Mlp(dim, mlp_hidden, dim));
}

// g: (N, Tq, D), h: (N, Tk, D) -> (N, Tq, D)
at::Tensor DecoderBlockImpl::forward(const at::Tensor& g, const at::Tensor& h,
                                     const std::optional<at::Tensor>& mask, bool causal) {
  if (recompute && recompute_applies(is_training(), {g, h}))
    return recompute_in_backward(
        [this, mask, causal](const std::vector<at::Tensor>& in) {
          return forward_block(in[0], in[1], mask, causal);
        },
        {g, h});
  return forward_block(g, h, mask, causal);
}

// g: (N, Tq, D), h: (N, Tk, D) -> (N, Tq, D)
at::Tensor DecoderBlockImpl::forward_block(const at::Tensor& g, const at::Tensor& h,
                                           const std::optional<at::Tensor>& mask, bool causal) {
  auto x = g + attn(norm1(g), norm1(h), mask, causal);
  return x + mlp(norm2(x));
}

// keys: (N, L) -> 2 x (N, 1, L+1, L+1) bool
std::pair<at::Tensor, at::Tensor> dense_masks(const at::Tensor& keys) {
  const int64_t n = keys.size(0), l = keys.size(1);
  auto ki = keys.unsqueeze(2), kj = keys.unsqueeze(1);  // row i = query, column j = key
  auto pad = [&](const at::Tensor& patch_mask) {        // (N, L, L) -> (N, 1, L+1, L+1)
    auto m = at::zeros({n, l + 1, l + 1}, keys.options().dtype(at::kBool));
    m.narrow(1, 1, l).narrow(2, 1, l).copy_(patch_mask);
    m.select(2, 0).fill_(true);  // every row sees cls; the cls row sees only cls
    return m.unsqueeze(1);
  };
  return {pad(kj <= ki), pad(kj < ki)};
}

// keys: (N, L) -> (order, inverse), (N, L) int64 each
std::pair<at::Tensor, at::Tensor> order_from_keys(const at::Tensor& keys) {
  auto order = at::argsort(keys, /*stable=*/true, /*dim=*/1);
  auto ranks = at::arange(keys.size(1), order.options()).expand_as(order);
  auto inverse = at::empty_like(order).scatter_(1, order, ranks);
  return {order, inverse};
}

static AimConfig validated(const AimConfig& cfg) {
  cfg.validate();
  return cfg;
}

AimVitImpl::AimVitImpl(const AimConfig& cfg) : VitEncoderImpl(validated(cfg).vit), cfg_(cfg) {
  const int64_t d = cfg.vit.embed_dim;
  query_blocks_list_ = register_module("query_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.decoder_depth; ++i) {
    query_blocks_.emplace_back(d, cfg.vit.num_heads, cfg.vit.mlp_hidden());
    query_blocks_list_->push_back(query_blocks_.back());
  }
  if (cfg.head == "mlp") {
    head_mlp_ = register_module("prediction_head", Mlp(d, cfg.vit.mlp_hidden(), cfg.out_dim()));
  } else {
    head_linear_ = register_module("prediction_head", torch::nn::Linear(d, cfg.out_dim()));
    init_linear_(head_linear_);
  }
}

bool AimVitImpl::is_encoder_key(const std::string& name) {
  for (const char* prefix : {"patch_embed.", "blocks.", "norm."})
    if (name.rfind(prefix, 0) == 0) return true;
  return name == "cls_token" || name == "pos_embed";
}

void AimVitImpl::set_checkpoint_blocks(int64_t n) {
  VitEncoderImpl::set_checkpoint_blocks(n);
  for (int64_t i = 0; i < decoder_depth(); ++i) query_blocks_[static_cast<size_t>(i)]->recompute = i < n;
}

// imgs: (N, C, H, W) -> (N, L+1, D)
at::Tensor AimVitImpl::encode(const at::Tensor& imgs) { return forward_features(imgs); }

void AimVitImpl::check_keys(const at::Tensor& keys, int64_t n) const {
  const int64_t l = vit_cfg_.num_patches();
  if (keys.dim() != 2 || keys.size(0) != n || keys.size(1) != l)
    throw InputError("model keys", "expected (" + std::to_string(n) + ", " + std::to_string(l) + "), got " +
                                       c10::str(keys.sizes()));
}

// imgs: (N, C, H, W), keys: (N, L) -> (N, L, out)
at::Tensor AimVitImpl::forward(const at::Tensor& imgs, const at::Tensor& keys) {
  check_images(imgs);
  check_keys(keys, imgs.size(0));
  if (cfg_.attention == "dense") return forward_dense(imgs, keys);
  auto [order, inverse] = order_from_keys(keys);
  return forward_causal(imgs, order, inverse);
}

// imgs: (N, C, H, W), keys/order/inverse: (N, L) -> (N, L, out)
at::Tensor AimVitImpl::forward_ordered(const at::Tensor& imgs, const at::Tensor& keys,
                                       const at::Tensor& order, const at::Tensor& inverse) {
  check_images(imgs);
  check_keys(keys, imgs.size(0));
  if (cfg_.attention == "dense") return forward_dense(imgs, keys);
  check_keys(order, imgs.size(0));
  check_keys(inverse, imgs.size(0));
  return forward_causal(imgs, order, inverse);
}

// g: (N, T, D) -> (N, T, out)
at::Tensor AimVitImpl::predict(const at::Tensor& g) {
  auto x = norm_(g);
  return head_mlp_ ? head_mlp_(x) : linear(head_linear_, x);
}

// imgs: (N, C, H, W), order/inverse: (N, L) -> (N, L, out)
at::Tensor AimVitImpl::forward_causal(const at::Tensor& imgs, const at::Tensor& order,
                                      const at::Tensor& inverse) {
  // Patch tokens straight into key order with their position embeddings added in the same pass
  // (semaim::permute_rows, kernels/permute_rows); its backward is the gather by the inverse permutation.
  const int64_t l = vit_cfg_.num_patches();
  const at::Tensor ord = order.to(at::kLong), inv = inverse.to(at::kLong);
  auto pos = pos_embed_.narrow(1, 1, l).squeeze(0);                         // (L, D)
  auto patches = kernels::permute_rows(patch_embed_(imgs), ord, inv, pos);  // (N, L, D), sorted
  const int64_t n = patches.size(0), d = patches.size(2);
  auto cls = cls_with_pos().expand({n, 1, d}).to(patches.scalar_type());
  auto h = at::cat({cls, patches}, 1);  // (N, L+1, D): [cls, sorted patches]
  // Queries: the positions of the sorted patches (the cls query is never read, so it is dropped).
  auto g = kernels::permute_rows(pos, ord, inv).to(h.scalar_type());

  const int64_t step = cfg_.step();
  for (int64_t i = 0; i < depth(); ++i) {
    h = blocks_[static_cast<size_t>(i)](h, std::nullopt, /*causal=*/true);
    if ((i + 1) % step == 0) {
      // Query k sees [cls, sorted 0..k-1]: causal over the first L content rows (the last is never read).
      g = query_blocks_[static_cast<size_t>((i + 1) / step - 1)](g, h.narrow(1, 0, l), std::nullopt,
                                                                 /*causal=*/true);
    }
  }
  auto pred = predict(g);                        // (N, L, out), sorted order
  return kernels::permute_rows(pred, inv, ord);  // back to natural order
}

// imgs: (N, C, H, W), keys: (N, L) -> (N, L, out)
at::Tensor AimVitImpl::forward_dense(const at::Tensor& imgs, const at::Tensor& keys) {
  auto h = embed(imgs);  // (N, L+1, D)
  const int64_t n = h.size(0), l = h.size(1) - 1, d = h.size(2);
  auto [mask_h, mask_g] = dense_masks(keys);
  auto g = pos_embed_.expand({n, l + 1, d}).to(h.scalar_type());  // cls query = zeros
  const int64_t step = cfg_.step();
  for (int64_t i = 0; i < depth(); ++i) {
    h = blocks_[static_cast<size_t>(i)](h, mask_h);
    if ((i + 1) % step == 0) g = query_blocks_[static_cast<size_t>((i + 1) / step - 1)](g, h, mask_g);
  }
  return predict(g).narrow(1, 1, l);
}

// imgs: (N, C, H, W) -> (N, L, p*p*C)
at::Tensor AimVitImpl::patchify(const at::Tensor& imgs) const {
  check_images(imgs);
  return models::patchify(imgs, vit_cfg_.patch_size);
}

// x: (N, L, p*p*C) -> (N, C, H, W)
at::Tensor AimVitImpl::unpatchify(const at::Tensor& x) const {
  const auto& c = vit_cfg_;
  return models::unpatchify(x, c.patch_size, c.in_chans, c.grid_h(), c.grid_w());
}

// imgs: (N, C, H, W), keys: (N, L) -> scalar
at::Tensor AimVitImpl::forward_loss(const at::Tensor& imgs, const at::Tensor& keys,
                                    const TargetConfig& tcfg) {
  auto pred = forward(imgs, keys);
  auto target = pixel_target(imgs, vit_cfg_.patch_size, tcfg);
  return pixel_loss(pred, target, tcfg.loss);
}

// imgs: (N, C, H, W), order/inverse: (N, L) -> scalar
at::Tensor AimVitImpl::forward_loss_ordered(const at::Tensor& imgs, const at::Tensor& order,
                                            const at::Tensor& inverse, const TargetConfig& tcfg) {
  check_images(imgs);
  check_keys(order, imgs.size(0));
  check_keys(inverse, imgs.size(0));
  auto pred = cfg_.attention == "dense" ? forward_dense(imgs, inverse.to(at::kFloat))
                                        : forward_causal(imgs, order, inverse);
  auto target = pixel_target(imgs, vit_cfg_.patch_size, tcfg);
  return pixel_loss(pred, target, tcfg.loss);
}

// imgs: (N, C, H, W), order/inverse: (N, L), target: (N, L+1, K) -> scalar
at::Tensor AimVitImpl::forward_feature_loss_ordered(const at::Tensor& imgs, const at::Tensor& order,
                                                    const at::Tensor& inverse, const at::Tensor& target) {
  check_images(imgs);
  check_keys(order, imgs.size(0));
  check_keys(inverse, imgs.size(0));
  const int64_t l = vit_cfg_.num_patches();
  if (target.dim() != 3 || target.size(0) != imgs.size(0) || target.size(1) != l + 1 ||
      target.size(2) != cfg_.out_dim())
    throw InputError("feature target", "expected (" + std::to_string(imgs.size(0)) + ", " +
                                           std::to_string(l + 1) + ", " + std::to_string(cfg_.out_dim()) +
                                           "), got " + c10::str(target.sizes()));
  auto pred = cfg_.attention == "dense" ? forward_dense(imgs, inverse.to(at::kFloat))
                                        : forward_causal(imgs, order, inverse);
  return feature_loss(pred, target.narrow(1, 1, l));
}

}  // namespace semaim::models

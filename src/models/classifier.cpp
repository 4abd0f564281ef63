// ViT classifier for fine-tuning: MAE models_vit.VisionTransformer.forward_features + head.
#include "semaim/models/classifier.h"

#include "semaim/core/errors.h"

namespace semaim::models {

void ClassifierConfig::validate(const std::string& where) const {
  vit.validate(where);
  if (num_classes < 1)
    throw InputError(where, "num_classes must be positive, got " + std::to_string(num_classes));
  if (global_pool != "avg" && global_pool != "cls")
    throw InputError(where, "global_pool must be avg or cls, got '" + global_pool + "'");
  if (!(head_init_std > 0)) throw InputError(where, "head_init_std must be positive");
}

VitClassifierImpl::VitClassifierImpl(const ClassifierConfig& cfg) : VitEncoderImpl(cfg.vit), cfg_(cfg) {
  cfg.validate();
  const int64_t d = cfg.vit.embed_dim;
  if (cfg.global_pool == "avg") {
    // timm: norm becomes Identity and fc_norm holds the LayerNorm, so checkpoints carry no norm.* keys.
    unregister_module("norm");
    fc_norm = register_module("fc_norm", make_layer_norm(d));
  }
  if (cfg.head_bn)
    head_bn = register_module("head_bn",
                              torch::nn::BatchNorm1d(torch::nn::BatchNormOptions(d).affine(false).eps(1e-6)));
  head = register_module("head", torch::nn::Linear(d, cfg.num_classes));
  if (cfg.frozen_encoder)
    for (auto& p : named_parameters(/*recurse=*/true))
      if (p.key().rfind("head", 0) != 0) p.value().set_requires_grad(false);
  at::NoGradGuard ng;
  // MAE calls timm's trunc_normal_(std=2e-5), whose bounds are the absolute ±2: a plain normal at this std.
  head->weight.normal_(0.0, cfg.head_init_std).clamp_(-2.0, 2.0);
  head->bias.zero_();
}

// imgs: (N, C, H, W) -> (N, D)
at::Tensor VitClassifierImpl::forward_pooled(const at::Tensor& imgs) {
  auto x = embed(imgs);
  for (auto& blk : blocks_) x = blk(x);
  if (cfg_.global_pool == "avg") return fc_norm(x.narrow(1, 1, x.size(1) - 1).mean(1));
  return norm_(x).select(1, 0);
}

// imgs: (N, C, H, W) -> (N, num_classes)
at::Tensor VitClassifierImpl::forward(const at::Tensor& imgs) {
  at::Tensor x;
  if (cfg_.frozen_encoder) {
    at::NoGradGuard ng;  // nothing below the head trains: no graph to keep
    x = forward_pooled(imgs);
  } else {
    x = forward_pooled(imgs);
  }
  return head(head_bn ? head_bn(x) : x);
}

}  // namespace semaim::models

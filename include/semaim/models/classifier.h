// Image classifier on the ViT encoder for fine-tuning (MAE models_vit.VisionTransformer, timm's
// VisionTransformer with global_pool 'avg' | 'token'): the encoder's blocks, then either the mean of the
// patch tokens through `fc_norm` (the final `norm` is removed, as MAE and timm do) or the final-normed cls
// token, then a Linear `head` initialized with std 2e-5 (MAE main_finetune). As MAE main_linprobe's model: a
// frozen encoder (run without gradients) and BatchNorm without affine parameters before the head.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cstdint>
#include <string>

#include "semaim/models/vit.h"

namespace semaim::models {

struct ClassifierConfig {
  VitConfig vit;
  int64_t num_classes = 1000;
  std::string global_pool = "avg";  // avg | cls
  double head_init_std = 2e-5;      // normal std of the head weight (bias zero)
  bool head_bn = false;             // BatchNorm1d(affine=False, eps 1e-6) before the head (`head_bn`)
  bool frozen_encoder = false;      // only the head (and head_bn's statistics) train
  void validate(const std::string& where = "model") const;
};

class VitClassifierImpl : public VitEncoderImpl {
 public:
  explicit VitClassifierImpl(const ClassifierConfig& cfg);
  // imgs: (N, C, H, W) -> logits (N, num_classes)
  at::Tensor forward(const at::Tensor& imgs);
  // The pooled, normed feature the head reads. imgs: (N, C, H, W) -> (N, D)
  at::Tensor forward_pooled(const at::Tensor& imgs);
  const ClassifierConfig& config() const { return cfg_; }

  torch::nn::LayerNorm fc_norm{nullptr};  // avg pooling only
  torch::nn::BatchNorm1d head_bn{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  ClassifierConfig cfg_;
};
TORCH_MODULE(VitClassifier);

}  // namespace semaim::models

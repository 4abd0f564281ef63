// ViTDet's simple feature pyramid (Li et al. 2022 §3; detectron2 modeling/backbone/vit.py
// SimpleFeaturePyramid with fpn.py LastLevelMaxPool): every level from the last ViT feature map. Keys as
// detectron2's (simfp_<stage>.*).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "semaim/models/heads/conv_ln.h"

namespace semaim::models {

// One stage per scale factor, named simfp_<log2 stride>: x4 = deconv 2x2 (D -> D/2), LN, GELU, deconv (->
// D/4); x2 = deconv (D -> D/2); x1 = identity; x1/2^k = 2^k x 2^k max-pool (ViTDet: x0.5; a patch-4 encoder
// reaches stride 32 with x1/8); each then a 1x1 and a 3x3 ConvLn to
// out_channels. After the last stage, one more level: LastLevelMaxPool (kernel 1, stride 2) of it.
class SimpleFeaturePyramidImpl : public torch::nn::Module {
 public:
  // in_stride: the feature's stride in input pixels (the patch size). scale_factors: from {4, 2, 1, 1/2 ..
  // 1/32} in decreasing order with each stride double the previous (InputError naming model.scale_factors
  // otherwise).
  SimpleFeaturePyramidImpl(int64_t in_dim, int64_t out_channels = 256,
                           const std::vector<double>& scale_factors = {4.0, 2.0, 1.0, 0.5},
                           int64_t in_stride = 16);
  // feature: (N, D, h, w) -> per level, finest first, (N, out_channels, h * s, w * s) for each scale s, then
  // (N, out_channels, ceil(h_last / 2), ceil(w_last / 2))
  std::vector<at::Tensor> forward(const at::Tensor& feature);
  // Each output level's stride in input pixels ({4, 8, 16, 32, 64} for stride 16: p2..p6).
  const std::vector<int64_t>& strides() const { return strides_; }

 private:
  std::vector<torch::nn::Sequential> stages_;
  std::vector<int64_t> strides_;
};
TORCH_MODULE(SimpleFeaturePyramid);

}  // namespace semaim::models

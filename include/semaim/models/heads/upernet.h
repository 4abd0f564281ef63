// UperNet on a plain ViT for semantic segmentation, as MAE / BEiT run it in mmsegmentation: features of four
// blocks, a neck that rescales them x4, x2, x1, x0.5, mmseg's UPerHead (pyramid pooling on the last level, FPN
// laterals and outputs, fusion) and an auxiliary FCNHead on the third level. Module and parameter names follow
// mmseg (decode_head.psp_modules.*, lateral_convs.*, fpn_convs.*, fpn_bottleneck, conv_seg; auxiliary_head.*).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "semaim/models/sync_batchnorm.h"
#include "semaim/models/vit.h"

namespace semaim::models {

struct UperNetConfig {
  VitConfig vit;                                   // dynamic_img_size is forced on (any crop size)
  std::vector<int64_t> out_indices{3, 5, 7, 11};   // encoder blocks whose outputs feed the neck
  int64_t channels = 768;                          // UPerHead width
  std::vector<int64_t> pool_scales{1, 2, 3, 6};
  int64_t num_classes = 150;
  double dropout = 0.1;                            // Dropout2d before each conv_seg
  bool aux_head = true;
  int64_t aux_channels = 256, aux_in_index = 2;
  double aux_weight = 0.4;
  bool avg_non_ignore = false;  // mmseg CrossEntropyLoss: false averages over every pixel, ignored ones too
  int64_t ignore_index = 255;
  void validate(const std::string& where = "model") const;
};

// mmcv ConvModule: conv (no bias) -> BatchNorm (synchronized over ranks once set_sync_batchnorm gave it a
// reduction) -> ReLU, keys conv.* and bn.*.
class ConvModuleImpl : public torch::nn::Module {
 public:
  ConvModuleImpl(int64_t in, int64_t out, int64_t kernel);
  // x: (N, in, H, W) -> (N, out, H, W)
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  SyncBatchNorm2d bn{nullptr};
};
TORCH_MODULE(ConvModule);

// The ViT neck of MAE's / BEiT's segmentation backbones: fpn1 = deconv, (Sync)BN, GELU, deconv (x4); fpn2 = deconv
// (x2); fpn3 = identity; fpn4 = 2x2 max-pool (x0.5).
class VitNeckImpl : public torch::nn::Module {
 public:
  explicit VitNeckImpl(int64_t dim);
  // four (N, D, h, w) maps -> (N, D, 4h, 4w), (N, D, 2h, 2w), (N, D, h, w), (N, D, h/2, w/2)
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& features);
  torch::nn::Sequential fpn1{nullptr}, fpn2{nullptr};
};
TORCH_MODULE(VitNeck);

// mmseg UPerHead.
class UperHeadImpl : public torch::nn::Module {
 public:
  UperHeadImpl(int64_t in_channels, int64_t channels, const std::vector<int64_t>& pool_scales, int64_t num_classes,
               double dropout);
  // four levels, finest first -> logits (N, K, H0, W0) at the finest level's size
  at::Tensor forward(const std::vector<at::Tensor>& levels);
  torch::nn::ModuleList psp_modules{nullptr}, lateral_convs{nullptr}, fpn_convs{nullptr};
  ConvModule bottleneck{nullptr}, fpn_bottleneck{nullptr};
  torch::nn::Conv2d conv_seg{nullptr};

 private:
  std::vector<int64_t> pool_scales_;
  double dropout_;
};
TORCH_MODULE(UperHead);

// mmseg FCNHead with one 3x3 ConvModule (concat_input false), the auxiliary head.
class FcnHeadImpl : public torch::nn::Module {
 public:
  FcnHeadImpl(int64_t in_channels, int64_t channels, int64_t num_classes, double dropout);
  // x: (N, C, H, W) -> (N, K, H, W)
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Sequential convs{nullptr};
  torch::nn::Conv2d conv_seg{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(FcnHead);

struct SegOutput {
  at::Tensor logits;      // (N, K, H/4, W/4) for an (H, W) input and patch 16: the decode head's resolution
  at::Tensor aux_logits;  // same size, from the auxiliary head (undefined when it is off or in eval)
};

class UperNetImpl : public torch::nn::Module {
 public:
  explicit UperNetImpl(const UperNetConfig& cfg);
  // imgs: (N, C, H, W), sides multiples of the patch size -> logits of both heads
  SegOutput forward(const at::Tensor& imgs);
  // Logits resized to the input (bilinear, align_corners false). imgs: (N, C, H, W) -> (N, K, H, W)
  at::Tensor predict_logits(const at::Tensor& imgs);
  // Decode loss + aux_weight * auxiliary loss, each cross entropy of the logits resized to the labels.
  // labels: (N, H, W) int64 with ignore_index -> scalar
  at::Tensor loss(const SegOutput& out, const at::Tensor& labels) const;
  const UperNetConfig& config() const { return cfg_; }

  VitEncoder backbone{nullptr};
  VitNeck neck{nullptr};
  UperHead decode_head{nullptr};
  FcnHead auxiliary_head{nullptr};

 private:
  UperNetConfig cfg_;
};
TORCH_MODULE(UperNet);

// mmseg's pixel cross entropy: logits resized to the labels' size (bilinear, align_corners false), ignored
// pixels contribute zero, divided by every pixel (avg_non_ignore false) or by the non-ignored ones.
// logits: (N, K, h, w), labels: (N, H, W) int64 -> scalar
at::Tensor seg_cross_entropy(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore_index,
                             bool avg_non_ignore);

}  // namespace semaim::models

// The convolution-with-LayerNorm layers of ViTDet's pyramid and RoI heads (detectron2 layers.LayerNorm and
// layers.Conv2d with norm="LN"), shared by simple_fpn.h and roi_heads.h.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace semaim::models {

// detectron2 layers.LayerNorm: normalizes each position over the channels (eps 1e-6), keys weight / bias.
class ChannelLayerNormImpl : public torch::nn::Module {
 public:
  explicit ChannelLayerNormImpl(int64_t channels, double eps = 1e-6);
  // x: (N, C, H, W) -> (N, C, H, W)
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias;

 private:
  double eps_;
};
TORCH_MODULE(ChannelLayerNorm);

struct ConvLnOptions {
  bool relu = false;  // the RoI heads' convs end in ReLU, the pyramid's do not
  // The pyramid keeps PyTorch's default Conv2d init; the RoI heads use fvcore's c2_msra_fill.
  enum class Init { kPyTorchDefault, kMsra } init = Init::kPyTorchDefault;
};

// detectron2 Conv2d(k x k, padding k/2, bias off, norm=LN[, activation=ReLU]): keys weight, norm.weight, norm.bias.
class ConvLnImpl : public torch::nn::Module {
 public:
  ConvLnImpl(int64_t in, int64_t out, int64_t kernel, ConvLnOptions options = {});
  // x: (N, in, H, W) -> (N, out, H, W)
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  ChannelLayerNorm norm{nullptr};

 private:
  int64_t padding_;
  bool relu_;
};
TORCH_MODULE(ConvLn);

}  // namespace semaim::models

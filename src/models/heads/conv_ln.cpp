// detectron2 layers.LayerNorm and layers.Conv2d with norm="LN" (the convolutions of ViTDet's pyramid and heads).
#include "semaim/models/heads/conv_ln.h"

#include <torch/nn/init.h>

#include <cmath>

namespace semaim::models {

ChannelLayerNormImpl::ChannelLayerNormImpl(int64_t channels, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::ones({channels}));
  bias = register_parameter("bias", at::zeros({channels}));
}

at::Tensor ChannelLayerNormImpl::forward(const at::Tensor& x) {
  const at::Tensor u = x.mean(1, true);
  const at::Tensor s = (x - u).pow(2).mean(1, true);
  return weight.view({-1, 1, 1}) * ((x - u) / at::sqrt(s + eps_)) + bias.view({-1, 1, 1});
}

ConvLnImpl::ConvLnImpl(int64_t in, int64_t out, int64_t kernel, ConvLnOptions options)
    : padding_(kernel / 2), relu_(options.relu) {
  weight = register_parameter("weight", at::empty({out, in, kernel, kernel}));
  norm = register_module("norm", ChannelLayerNorm(out));
  if (options.init == ConvLnOptions::Init::kMsra)
    torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanOut, torch::kReLU);  // fvcore c2_msra_fill
  else
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));  // PyTorch's default Conv2d init
}

at::Tensor ConvLnImpl::forward(const at::Tensor& x) {
  at::Tensor y = norm->forward(at::conv2d(x, weight, {}, /*stride=*/1, /*padding=*/padding_));
  return relu_ ? at::relu(y) : y;
}

}  // namespace semaim::models

// ViTDet's simple feature pyramid and its extra max-pooled level (detectron2 vit.py SimpleFeaturePyramid,
// fpn.py LastLevelMaxPool).
#include "semaim/models/heads/simple_fpn.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include <cmath>
#include <string>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

torch::nn::ConvTranspose2d deconv2x2(int64_t in, int64_t out) {
  return torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, 2).stride(2));
}

// The stage before the two ConvLn layers for one scale factor; its output width is returned in out_dim.
torch::nn::Sequential resample_stage(double scale, int64_t dim, int64_t& out_dim) {
  torch::nn::Sequential s;
  out_dim = dim;
  if (scale == 4.0) {
    s->push_back(deconv2x2(dim, dim / 2));
    s->push_back(ChannelLayerNorm(dim / 2));
    s->push_back(torch::nn::GELU());
    s->push_back(deconv2x2(dim / 2, dim / 4));
    out_dim = dim / 4;
  } else if (scale == 2.0) {
    s->push_back(deconv2x2(dim, dim / 2));
    out_dim = dim / 2;
  } else if (scale < 1.0) {
    const auto k = static_cast<int64_t>(std::llround(1.0 / scale));
    s->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(k).stride(k)));
  }
  return s;
}

}  // namespace

SimpleFeaturePyramidImpl::SimpleFeaturePyramidImpl(int64_t in_dim, int64_t out_channels,
                                                   const std::vector<double>& scale_factors,
                                                   int64_t in_stride) {
  const std::string where = "model.scale_factors";
  if (scale_factors.empty()) throw InputError(where, "needs at least one scale factor");
  if (in_dim <= 0 || out_channels <= 0 || in_stride <= 0)
    throw InputError("model", "pyramid widths and the input stride must be positive");
  for (size_t i = 0; i < scale_factors.size(); ++i) {
    const double s = scale_factors[i];
    const bool pool = s < 1.0 && s >= 1.0 / 32 && std::ldexp(1.0, static_cast<int>(std::lround(std::log2(s)))) == s;
    if (s != 4.0 && s != 2.0 && s != 1.0 && !pool)
      throw InputError(where, "scale factor " + std::to_string(s) + " is not one of 4, 2, 1, 1/2 .. 1/32");
    if (s == 4.0 && in_dim % 4 != 0)
      throw InputError(where, "scale 4 needs a feature width divisible by 4, got " + std::to_string(in_dim));
    if (s == 2.0 && in_dim % 2 != 0)
      throw InputError(where, "scale 2 needs an even feature width, got " + std::to_string(in_dim));
    const double stride = static_cast<double>(in_stride) / s;
    const auto stage = static_cast<int64_t>(std::lround(std::log2(stride)));
    if (stride != std::floor(stride) || std::ldexp(1.0, static_cast<int>(stage)) != stride)
      throw InputError(where, "stride " + std::to_string(stride) + " of scale " + std::to_string(s) +
                                  " is not a power of two");
    if (i > 0 && stride != 2.0 * static_cast<double>(strides_.back()))
      throw InputError(where, "scale factors must halve from one level to the next (e.g. 4, 2, 1, 0.5)");
    strides_.push_back(static_cast<int64_t>(stride));
    int64_t width = 0;
    torch::nn::Sequential seq = resample_stage(s, in_dim, width);
    seq->push_back(ConvLn(width, out_channels, 1));
    seq->push_back(ConvLn(out_channels, out_channels, 3));
    stages_.push_back(register_module("simfp_" + std::to_string(stage), seq));
  }
  strides_.push_back(2 * strides_.back());  // LastLevelMaxPool
}

// feature: (N, D, h, w) -> per level (N, out_channels, h_l, w_l), finest first
std::vector<at::Tensor> SimpleFeaturePyramidImpl::forward(const at::Tensor& feature) {
  std::vector<at::Tensor> levels;
  for (auto& stage : stages_) levels.push_back(stage->forward(feature));
  levels.push_back(at::max_pool2d(levels.back(), {1, 1}, {2, 2}));
  return levels;
}

}  // namespace semaim::models

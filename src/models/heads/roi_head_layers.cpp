// The layers of ViTDet's RoI heads: detectron2 layers.LayerNorm, box_head.py FastRCNNConvFCHead, fast_rcnn.py
// FastRCNNOutputLayers' linears, mask_head.py MaskRCNNConvUpsampleHead (with their inits), and
// layers/mask_ops.py paste_masks_in_image.
#include <torch/nn/init.h>

#include <cmath>

#include "semaim/models/heads/roi_heads.h"

namespace semaim::models {
namespace {

// fvcore c2_msra_fill: kaiming normal (fan_out, ReLU), bias 0.
void c2_msra_fill(at::Tensor& weight) { torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanOut, torch::kReLU); }

constexpr ConvLnOptions kReluMsra{.relu = true, .init = ConvLnOptions::Init::kMsra};

}  // namespace

BoxHeadImpl::BoxHeadImpl(int64_t in_channels, int64_t resolution, int64_t num_convs, int64_t conv_dim,
                         int64_t fc_dim) {
  int64_t channels = in_channels;
  for (int64_t k = 0; k < num_convs; ++k) {
    convs.push_back(register_module("conv" + std::to_string(k + 1), ConvLn(channels, conv_dim, 3, kReluMsra)));
    channels = conv_dim;
  }
  fc1 = register_module("fc1", torch::nn::Linear(channels * resolution * resolution, fc_dim));
  // fvcore c2_xavier_fill: kaiming uniform with a = 1, bias 0.
  torch::nn::init::kaiming_uniform_(fc1->weight, 1.0);
  torch::nn::init::zeros_(fc1->bias);
}

at::Tensor BoxHeadImpl::forward(const at::Tensor& x) {
  at::Tensor y = x;
  for (auto& c : convs) y = c->forward(y);
  return at::relu(fc1->forward(y.flatten(1)));
}

BoxPredictorImpl::BoxPredictorImpl(int64_t in, int64_t num_classes) {
  cls_score = register_module("cls_score", torch::nn::Linear(in, num_classes + 1));
  bbox_pred = register_module("bbox_pred", torch::nn::Linear(in, 4 * num_classes));
  torch::nn::init::normal_(cls_score->weight, 0.0, 0.01);
  torch::nn::init::normal_(bbox_pred->weight, 0.0, 0.001);
  torch::nn::init::zeros_(cls_score->bias);
  torch::nn::init::zeros_(bbox_pred->bias);
}

std::pair<at::Tensor, at::Tensor> BoxPredictorImpl::forward(const at::Tensor& x) {
  return {cls_score->forward(x), bbox_pred->forward(x)};
}

MaskHeadImpl::MaskHeadImpl(int64_t in_channels, int64_t num_convs, int64_t conv_dim, int64_t num_classes) {
  int64_t channels = in_channels;
  for (int64_t k = 0; k < num_convs; ++k) {
    mask_fcns.push_back(register_module("mask_fcn" + std::to_string(k + 1), ConvLn(channels, conv_dim, 3, kReluMsra)));
    channels = conv_dim;
  }
  deconv = register_module("deconv",
                           torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(channels, conv_dim, 2).stride(2)));
  predictor = register_module("predictor", torch::nn::Conv2d(torch::nn::Conv2dOptions(conv_dim, num_classes, 1)));
  c2_msra_fill(deconv->weight);
  torch::nn::init::zeros_(deconv->bias);
  torch::nn::init::normal_(predictor->weight, 0.0, 0.001);
  torch::nn::init::zeros_(predictor->bias);
}

at::Tensor MaskHeadImpl::forward(const at::Tensor& x) {
  at::Tensor y = x;
  for (auto& c : mask_fcns) y = c->forward(y);
  return predictor->forward(at::relu(deconv->forward(y)));
}

namespace det {

at::Tensor paste_masks(const at::Tensor& masks, const at::Tensor& boxes, int64_t h, int64_t w, double threshold) {
  const int64_t d = masks.size(0);
  at::Tensor out = at::zeros({d, h, w}, masks.options().dtype(at::kBool));
  const at::Tensor b = boxes.to(at::kFloat);
  const at::Tensor bc = b.cpu();
  const auto acc = bc.accessor<float, 2>();
  const auto fopts = b.options();
  for (int64_t i = 0; i < d; ++i) {
    // Only the box's surroundings can be non-zero (grid_sample pads with zeros); detectron2 pastes the same region.
    const int64_t x0 = std::max<int64_t>(static_cast<int64_t>(std::floor(acc[i][0])) - 1, 0);
    const int64_t y0 = std::max<int64_t>(static_cast<int64_t>(std::floor(acc[i][1])) - 1, 0);
    const int64_t x1 = std::min<int64_t>(static_cast<int64_t>(std::ceil(acc[i][2])) + 1, w);
    const int64_t y1 = std::min<int64_t>(static_cast<int64_t>(std::ceil(acc[i][3])) + 1, h);
    if (x1 <= x0 || y1 <= y0) continue;
    const at::Tensor bx = b[i];
    // Pixel centres mapped into the box's [-1, 1] (grid_sample's align_corners=False frame).
    const at::Tensor gx = (at::arange(x0, x1, fopts) + 0.5 - bx[0]) / (bx[2] - bx[0]) * 2 - 1;
    const at::Tensor gy = (at::arange(y0, y1, fopts) + 0.5 - bx[1]) / (bx[3] - bx[1]) * 2 - 1;
    const at::Tensor grid = at::stack({gx.view({1, -1}).expand({y1 - y0, x1 - x0}),
                                       gy.view({-1, 1}).expand({y1 - y0, x1 - x0})}, 2).unsqueeze(0);
    const at::Tensor m = masks.slice(0, i, i + 1).to(at::kFloat);
    const at::Tensor pasted = at::grid_sampler(m, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/false);
    out[i].slice(0, y0, y1).slice(1, x0, x1).copy_(pasted[0][0] >= threshold);
  }
  return out;
}

}  // namespace det
}  // namespace semaim::models

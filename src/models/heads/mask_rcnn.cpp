// ViTDet's Mask R-CNN: backbone -> simple feature pyramid -> RPN -> RoI heads (detectron2 GeneralizedRCNN
// with the ViTDet COCO config).
#include "semaim/models/heads/mask_rcnn.h"

#include <cmath>

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"

namespace semaim::models {
namespace {

// cfg with the fields the pyramid decides: widths, and strides p2..p6 (RPN) and p2..p5 (RoI pooling).
MaskRcnnConfig with_pyramid_fields(MaskRcnnConfig cfg) {
  const int64_t p = cfg.backbone.vit.patch_size;
  cfg.rpn.in_channels = cfg.roi.in_channels = cfg.fpn_channels;
  cfg.rpn.strides.clear();
  for (double s : cfg.scale_factors)
    cfg.rpn.strides.push_back(static_cast<int64_t>(std::llround(static_cast<double>(p) / s)));
  cfg.roi.strides = cfg.rpn.strides;
  cfg.rpn.strides.push_back(2 * cfg.rpn.strides.back());
  return cfg;
}

}  // namespace

void MaskRcnnConfig::validate(const std::string& where) const {
  backbone.validate(where + ".backbone");
  if (fpn_channels < 1) throw InputError(where + ".fpn_channels", "must be positive");
  if (scale_factors.size() != 4)
    throw InputError(where + ".scale_factors", "needs four pyramid levels (p2..p5), got " +
                                                   std::to_string(scale_factors.size()));
  for (double s : scale_factors)
    if (!(s > 0) || static_cast<double>(backbone.vit.patch_size) / s < 1.0)
      throw InputError(where + ".scale_factors", "scale " + std::to_string(s) + " gives a stride below one pixel for "
                                                 "patch size " + std::to_string(backbone.vit.patch_size));
  const MaskRcnnConfig full = with_pyramid_fields(*this);
  full.rpn.validate(where + ".rpn");
  full.roi.validate(where + ".roi_heads");
}

MaskRcnnImpl::MaskRcnnImpl(const MaskRcnnConfig& cfg) : cfg_(with_pyramid_fields(cfg)) {
  cfg_.validate();
  const VitConfig& v = cfg_.backbone.vit;
  backbone = register_module(
      "backbone", SimpleFeaturePyramid(v.embed_dim, cfg_.fpn_channels, cfg_.scale_factors, v.patch_size));
  net = backbone->register_module("net", VitDetBackbone(cfg_.backbone));
  proposal_generator = register_module("proposal_generator", Rpn(cfg_.rpn));
  roi_heads = register_module("roi_heads", RoiHeads(cfg_.roi));
}

void MaskRcnnImpl::check_inputs(const at::Tensor& images, const std::vector<det::ImageSize>& sizes) const {
  if (images.dim() != 4 || images.size(1) != cfg_.backbone.vit.in_chans)
    throw InputError("model input", "expected images (N, " + std::to_string(cfg_.backbone.vit.in_chans) +
                                        ", H, W), got " + c10::str(images.sizes()));
  if (static_cast<int64_t>(sizes.size()) != images.size(0))
    throw InputError("model input", std::to_string(sizes.size()) + " image sizes for a batch of " +
                                        std::to_string(images.size(0)));
  for (const auto& s : sizes)
    if (s.h < 1 || s.w < 1 || s.h > images.size(2) || s.w > images.size(3))
      throw InputError("model input", "image size " + std::to_string(s.h) + "x" + std::to_string(s.w) +
                                          " does not fit the padded batch " + c10::str(images.sizes()));
}

// images: (N, 3, H, W) -> per level (N, fpn_channels, H/s, W/s)
std::vector<at::Tensor> MaskRcnnImpl::features(const at::Tensor& images) {
  return backbone->forward(net->forward(images));
}

det::LossMap MaskRcnnImpl::forward_train(const at::Tensor& images, const std::vector<det::ImageSize>& sizes,
                                         const std::vector<det::ImageTargets>& targets) {
  check_inputs(images, sizes);
  if (targets.size() != sizes.size())
    throw InputError("model input", std::to_string(targets.size()) + " targets for a batch of " +
                                        std::to_string(sizes.size()));
  std::vector<at::Tensor> levels = features(images);
  RpnOutput rpn = proposal_generator->forward(levels, sizes, &targets);
  levels.pop_back();  // the RoI heads pool p2..p5
  RoiHeadsOutput roi = roi_heads->forward(levels, rpn.proposals, sizes, &targets);
  det::LossMap losses = std::move(rpn.losses);
  losses.insert(roi.losses.begin(), roi.losses.end());
  return losses;
}

std::vector<det::Detections> MaskRcnnImpl::inference(const at::Tensor& images,
                                                     const std::vector<det::ImageSize>& sizes) {
  check_inputs(images, sizes);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> levels = features(images);
  RpnOutput rpn = proposal_generator->forward(levels, sizes, nullptr);
  levels.pop_back();
  return roi_heads->forward(levels, rpn.proposals, sizes, nullptr).detections;
}

}  // namespace semaim::models

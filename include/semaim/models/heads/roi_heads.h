// The RoI heads of ViTDet's Mask R-CNN, as detectron2 builds them (roi_heads/roi_heads.py StandardROIHeads,
// box_head.py FastRCNNConvFCHead with LN, fast_rcnn.py FastRCNNOutputLayers, mask_head.py MaskRCNNConvUpsampleHead
// with LN) and layers/mask_ops.py paste_masks_in_image. Parameter names follow detectron2 (box_head.conv1..4,
// box_head.fc1, box_predictor.cls_score / bbox_pred, mask_head.mask_fcn1..4, mask_head.deconv, mask_head.predictor).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "semaim/models/heads/box_ops.h"
#include "semaim/models/heads/conv_ln.h"
#include "semaim/models/heads/detection_types.h"

namespace semaim::models {

// Defaults are ViTDet's (configs/common/models/mask_rcnn_fpn.py + mask_rcnn_vitdet_b_100ep.py).
struct RoiHeadsConfig {
  int64_t num_classes = 80;
  int64_t in_channels = 256;
  std::vector<int64_t> strides{4, 8, 16, 32};  // of the pooled levels p2..p5
  double iou_threshold = 0.5;                  // matcher: below is background, no low-quality matches
  int64_t batch_size_per_image = 512;
  double positive_fraction = 0.25;
  bool proposal_append_gt = true;
  int64_t box_pooler_resolution = 7, mask_pooler_resolution = 14, pooler_sampling_ratio = 0;
  int64_t conv_dim = 256, num_box_convs = 4, fc_dim = 1024, num_mask_convs = 4;
  std::array<double, 4> bbox_reg_weights{10.0, 10.0, 5.0, 5.0};
  double smooth_l1_beta = 0.0;  // 0 = L1
  double test_score_thresh = 0.05, test_nms_thresh = 0.5;
  int64_t test_detections_per_img = 100;
  bool mask_on = true;
  void validate(const std::string& where = "model.roi_heads") const;
};

struct RoiHeadsOutput {
  std::vector<det::Detections> detections;  // per image at inference (empty in training)
  det::LossMap losses;                      // loss_cls, loss_box_reg, loss_mask in training
};

// detectron2 FastRCNNConvFCHead: convs (conv1..), flatten, fcs (fc1..) each followed by ReLU.
class BoxHeadImpl : public torch::nn::Module {
 public:
  BoxHeadImpl(int64_t in_channels, int64_t resolution, int64_t num_convs, int64_t conv_dim, int64_t fc_dim);
  // x: (R, C, S, S) -> (R, fc_dim)
  at::Tensor forward(const at::Tensor& x);
  std::vector<ConvLn> convs;
  torch::nn::Linear fc1{nullptr};
};
TORCH_MODULE(BoxHead);

// detectron2 FastRCNNOutputLayers' two linear layers: K+1 class logits (background last), 4K class-specific deltas.
class BoxPredictorImpl : public torch::nn::Module {
 public:
  BoxPredictorImpl(int64_t in, int64_t num_classes);
  // x: (R, in) -> {scores (R, K+1), deltas (R, 4K)}
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x);
  torch::nn::Linear cls_score{nullptr}, bbox_pred{nullptr};
};
TORCH_MODULE(BoxPredictor);

// detectron2 MaskRCNNConvUpsampleHead: mask_fcn1.. (3x3 conv + LN + ReLU), 2x2 stride-2 deconv + ReLU, 1x1 predictor.
class MaskHeadImpl : public torch::nn::Module {
 public:
  MaskHeadImpl(int64_t in_channels, int64_t num_convs, int64_t conv_dim, int64_t num_classes);
  // x: (R, C, S, S) -> mask logits (R, K, 2S, 2S)
  at::Tensor forward(const at::Tensor& x);
  std::vector<ConvLn> mask_fcns;
  torch::nn::ConvTranspose2d deconv{nullptr};
  torch::nn::Conv2d predictor{nullptr};
};
TORCH_MODULE(MaskHead);

class RoiHeadsImpl : public torch::nn::Module {
 public:
  explicit RoiHeadsImpl(const RoiHeadsConfig& cfg);
  // features: p2..p5 (N, C, H_l, W_l); proposals: per image (P_i, 4) from the RPN; targets: nullptr at inference
  RoiHeadsOutput forward(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& proposals,
                         const std::vector<det::ImageSize>& sizes, const std::vector<det::ImageTargets>* targets);
  const RoiHeadsConfig& config() const { return cfg_; }

  BoxHead box_head{nullptr};
  BoxPredictor box_predictor{nullptr};
  MaskHead mask_head{nullptr};

 private:
  // One image's sampled RoIs with their targets (detectron2 label_and_sample_proposals).
  struct Sampled {
    at::Tensor boxes;       // (R, 4) proposals
    at::Tensor classes;     // (R) int64, num_classes = background
    at::Tensor gt_boxes;    // (R, 4) matched ground truth (zeros without ground truth)
    at::Tensor gt_indices;  // (R) int64 matched ground-truth index (valid only for foreground)
  };
  Sampled label_and_sample(const at::Tensor& proposals, const det::ImageTargets& targets) const;
  det::LossMap box_losses(const std::vector<at::Tensor>& features, const std::vector<Sampled>& sampled);
  at::Tensor mask_loss(const std::vector<at::Tensor>& features, const std::vector<Sampled>& sampled,
                       const std::vector<det::ImageTargets>& targets);
  std::vector<det::Detections> inference(const std::vector<at::Tensor>& features,
                                         const std::vector<at::Tensor>& proposals,
                                         const std::vector<det::ImageSize>& sizes);

  RoiHeadsConfig cfg_;
  det::RoiPooler box_pooler_, mask_pooler_;
  det::Matcher matcher_;
  det::Box2BoxTransform transform_;
};
TORCH_MODULE(RoiHeads);

namespace det {
// detectron2 paste_masks_in_image: each M x M probability map resampled into its box on the h x w image by
// grid_sample (bilinear, align_corners false, pixel centres at +0.5), then >= threshold.
// masks: (D, 1, M, M), boxes: (D, 4) -> (D, h, w) bool
at::Tensor paste_masks(const at::Tensor& masks, const at::Tensor& boxes, int64_t h, int64_t w,
                       double threshold = 0.5);
}  // namespace det

}  // namespace semaim::models

// The region proposal network of ViTDet's Mask R-CNN, as detectron2 builds it (proposal_generator/rpn.py RPN +
// StandardRPNHead with two convs, proposal_utils.py find_top_rpn_proposals). Parameter names follow detectron2
// (rpn_head.conv.conv0, rpn_head.conv.conv1, rpn_head.objectness_logits, rpn_head.anchor_deltas).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "semaim/models/heads/box_ops.h"
#include "semaim/models/heads/detection_types.h"

namespace semaim::models {

// Defaults are ViTDet's (configs/common/models/mask_rcnn_fpn.py + mask_rcnn_vitdet_b_100ep.py).
struct RpnConfig {
  int64_t in_channels = 256;
  std::vector<int64_t> conv_dims{-1, -1};                   // 3x3 convs + ReLU; -1 keeps in_channels
  std::vector<double> anchor_sizes{32, 64, 128, 256, 512};  // one size per level
  std::vector<double> aspect_ratios{0.5, 1.0, 2.0};
  std::vector<int64_t> strides{4, 8, 16, 32, 64};           // of the levels p2..p6
  double anchor_offset = 0.0;
  std::vector<double> iou_thresholds{0.3, 0.7};
  std::vector<int64_t> iou_labels{0, -1, 1};
  bool allow_low_quality_matches = true;
  int64_t batch_size_per_image = 256;
  double positive_fraction = 0.5;
  int64_t pre_nms_topk_train = 2000, pre_nms_topk_test = 1000;    // per level
  int64_t post_nms_topk_train = 1000, post_nms_topk_test = 1000;  // per image
  double nms_thresh = 0.7;
  double min_box_size = 0.0;
  double smooth_l1_beta = 0.0;  // 0 = L1
  double loss_weight_cls = 1.0, loss_weight_loc = 1.0;
  void validate(const std::string& where = "model.rpn") const;
};

struct RpnOutput {
  std::vector<at::Tensor> proposals;  // per image (P, 4) float32 xyxy, detached, best objectness first
  det::LossMap losses;                // loss_rpn_cls, loss_rpn_loc (training with targets only)
};

// detectron2 StandardRPNHead: shared convs, then per anchor an objectness logit and four deltas.
class RpnHeadImpl : public torch::nn::Module {
 public:
  RpnHeadImpl(int64_t in_channels, const std::vector<int64_t>& conv_dims, int64_t num_anchors);
  // x: (N, C, H, W) -> {objectness (N, A, H, W), deltas (N, 4A, H, W)}
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x);
  torch::nn::Sequential conv{nullptr};
  torch::nn::Conv2d objectness_logits{nullptr}, anchor_deltas{nullptr};
};
TORCH_MODULE(RpnHead);

class RpnImpl : public torch::nn::Module {
 public:
  explicit RpnImpl(const RpnConfig& cfg);
  // features: p2..p6 (N, C, H_l, W_l); sizes: per image; targets: per image in training, nullptr at inference
  RpnOutput forward(const std::vector<at::Tensor>& features, const std::vector<det::ImageSize>& sizes,
                    const std::vector<det::ImageTargets>* targets);
  const RpnConfig& config() const { return cfg_; }
  const det::AnchorGenerator& anchor_generator() const { return anchors_; }

  RpnHead rpn_head{nullptr};

 private:
  RpnConfig cfg_;
  det::AnchorGenerator anchors_;
  det::Matcher matcher_;
  det::Box2BoxTransform transform_;
};
TORCH_MODULE(Rpn);

// detectron2 find_top_rpn_proposals: per level the top pre_nms_topk by objectness, then per image: clip, drop boxes
// not larger than min_box_size, NMS within each level (batched by level id), keep the best post_nms_topk.
// Non-finite boxes or scores are dropped, or throw RuntimeFailure in training (detectron2's FloatingPointError).
// proposals: per level (N, R_l, 4); logits: per level (N, R_l) -> per image (P, 4)
std::vector<at::Tensor> find_top_rpn_proposals(const std::vector<at::Tensor>& proposals,
                                               const std::vector<at::Tensor>& logits,
                                               const std::vector<det::ImageSize>& sizes, double nms_thresh,
                                               int64_t pre_nms_topk, int64_t post_nms_topk, double min_box_size,
                                               bool training);

}  // namespace semaim::models

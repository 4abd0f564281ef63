// ViTDet's Mask R-CNN (Li et al. 2022; detectron2 projects/ViTDet configs/COCO/mask_rcnn_vitdet_b_100ep.py,
// modeling/meta_arch/rcnn.py GeneralizedRCNN): the ViT backbone, its simple feature pyramid, the RPN and the
// RoI heads. State-dict keys read as detectron2's: backbone.net.*, backbone.simfp_*,
// proposal_generator.rpn_head.*, roi_heads.*.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "semaim/models/heads/detection_types.h"
#include "semaim/models/heads/roi_heads.h"
#include "semaim/models/heads/rpn.h"
#include "semaim/models/heads/simple_fpn.h"
#include "semaim/models/vitdet.h"

namespace semaim::models {

// rpn.in_channels, rpn.strides, roi.in_channels and roi.strides follow from the backbone and the pyramid
// (fpn_channels wide; strides patch / scale for p2..p5 and twice the last for p6, the RoI heads pooling p2..p5): the values given
// for them are not read.
struct MaskRcnnConfig {
  VitDetConfig backbone;
  int64_t fpn_channels = 256;
  // The pyramid's rescaling of the last block's map for p2..p5 (4, 2: transposed convolutions, 1, 1/2^k: max-pool
  // kernel 2^k); strides are patch_size / scale, so ViT-B/16's {4, 2, 1, 0.5} gives 4..32, and a patch-4
  // encoder's {1, 0.5, 0.25, 0.125} the same.
  std::vector<double> scale_factors{4.0, 2.0, 1.0, 0.5};
  RpnConfig rpn;
  RoiHeadsConfig roi;
  // Throws InputError naming `where` and the offending field.
  void validate(const std::string& where = "model") const;
};

class MaskRcnnImpl : public torch::nn::Module {
 public:
  explicit MaskRcnnImpl(const MaskRcnnConfig& cfg);
  // The pyramid p2..p6 of normalized images. images: (N, 3, H, W) -> per level (N, fpn_channels, H/s, W/s)
  std::vector<at::Tensor> features(const at::Tensor& images);
  // The RPN and RoI-head losses (loss_rpn_cls, loss_rpn_loc, loss_cls, loss_box_reg, loss_mask), as
  // detectron2's model in train mode. images: (N, 3, H, W) normalized, zero-padded; sizes: each image's
  // content size
  det::LossMap forward_train(const at::Tensor& images, const std::vector<det::ImageSize>& sizes,
                             const std::vector<det::ImageTargets>& targets);
  // Detections per image in input pixels (at most roi.test_detections_per_img each), without autograd.
  // images: (N, 3, H, W) -> N detections
  std::vector<det::Detections> inference(const at::Tensor& images, const std::vector<det::ImageSize>& sizes);
  const MaskRcnnConfig& config() const { return cfg_; }

  SimpleFeaturePyramid backbone{nullptr};  // holds the ViT as its submodule `net`, as detectron2's
  VitDetBackbone net{nullptr};
  Rpn proposal_generator{nullptr};
  RoiHeads roi_heads{nullptr};

 private:
  // Throws InputError unless images is (N, 3, H, W) with one size per image that fits in it.
  void check_inputs(const at::Tensor& images, const std::vector<det::ImageSize>& sizes) const;

  MaskRcnnConfig cfg_;
};
TORCH_MODULE(MaskRcnn);

}  // namespace semaim::models

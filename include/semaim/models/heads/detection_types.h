// What flows between the parts of the ViTDet Mask R-CNN (models/vitdet.h, heads/rpn.h, heads/roi_heads.h) and
// the detection task: per-image targets and detections, as detectron2's Instances carry them.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace semaim::models::det {

// The size of an image's content inside the padded batch (detectron2 ImageList.image_sizes).
struct ImageSize {
  int64_t h = 0, w = 0;
};

// One training image's ground truth, in input pixels of the padded batch.
struct ImageTargets {
  at::Tensor boxes;    // (G, 4) float32 xyxy
  at::Tensor classes;  // (G) int64, contiguous class ids 0..K-1
  at::Tensor masks;    // (G, H, W) uint8 at the batch's padded size (undefined for box-only training)
};

// One image's detections, in input pixels (the task rescales them to the original image).
struct Detections {
  at::Tensor boxes;    // (D, 4) float32 xyxy
  at::Tensor scores;   // (D) float32
  at::Tensor classes;  // (D) int64
  at::Tensor masks;    // (D, 1, M, M) float32 mask probabilities of the predicted class (M = 28), or undefined
};

// Named scalar losses (detectron2's loss dict: loss_rpn_cls, loss_rpn_loc, loss_cls, loss_box_reg, loss_mask).
using LossMap = std::map<std::string, at::Tensor>;

}  // namespace semaim::models::det

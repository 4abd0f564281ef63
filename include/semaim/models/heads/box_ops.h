// Box utilities of the ViTDet Mask R-CNN, as detectron2 defines them: IoU / area / clip (structures/boxes.py),
// Box2BoxTransform (box_regression.py), Matcher (matcher.py), subsample_labels (sampling.py),
// DefaultAnchorGenerator (anchor_generator.py) and the multi-level ROIPooler (poolers.py).
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "semaim/models/heads/detection_types.h"

namespace semaim::models::det {

// boxes: (N, 4) xyxy -> (N)
at::Tensor box_area(const at::Tensor& boxes);
// detectron2 pairwise_iou: zero where boxes do not intersect. a: (N, 4), b: (M, 4) -> (N, M)
at::Tensor box_iou(const at::Tensor& a, const at::Tensor& b);
// Boxes.clip: every coordinate clamped into [0, w] / [0, h]. boxes: (N, 4) -> (N, 4)
at::Tensor clip_boxes(const at::Tensor& boxes, ImageSize size);
// Boxes.nonempty: width and height both > threshold. boxes: (N, 4) -> (N) bool
at::Tensor nonempty_boxes(const at::Tensor& boxes, double threshold = 0.0);

// fvcore smooth_l1_loss summed: beta < 1e-5 is L1. input, target: (N, 4) -> scalar
at::Tensor smooth_l1_sum(const at::Tensor& input, const at::Tensor& target, double beta);

// detectron2 Box2BoxTransform: deltas (dx, dy, dw, dh) scaled by weights; dw, dh clamped at decoding so that
// exp() cannot overflow.
struct Box2BoxTransform {
  std::array<double, 4> weights{1.0, 1.0, 1.0, 1.0};
  double scale_clamp = std::log(1000.0 / 16.0);
  // src, target: (N, 4) xyxy -> (N, 4) deltas
  at::Tensor get_deltas(const at::Tensor& src, const at::Tensor& target) const;
  // deltas: (N, 4k), boxes: (N, 4) -> (N, 4k) xyxy (k = 1 or one box per class)
  at::Tensor apply_deltas(const at::Tensor& deltas, const at::Tensor& boxes) const;
};

// detectron2 Matcher: each prediction takes its best ground truth; labels by the interval of the best quality,
// thresholds {t1..tn} splitting [-inf, inf) into n+1 intervals with labels {l0..ln}.
struct Matcher {
  std::vector<double> thresholds;
  std::vector<int64_t> labels;
  bool allow_low_quality_matches = false;
  void validate(const std::string& where) const;
  // quality: (G, N) -> {matches (N) int64 gt index, match_labels (N) int8}; G = 0 gives index 0 and labels[0]
  std::pair<at::Tensor, at::Tensor> operator()(const at::Tensor& quality) const;
};

// detectron2 subsample_labels: up to num_samples * positive_fraction random positives (label not -1 and not
// bg_label), negatives (== bg_label) fill the rest; drawn with at::randperm on the default generator.
// labels: (N) int -> {positive indices (P) int64, negative indices (Q) int64}
std::pair<at::Tensor, at::Tensor> subsample_labels(const at::Tensor& labels, int64_t num_samples,
                                                   double positive_fraction, int64_t bg_label);

// detectron2 DefaultAnchorGenerator: per level, cell anchors (sizes x aspect ratios, centred on 0) shifted to
// every grid position (offset * stride); anchors ordered (y, x, cell anchor).
class AnchorGenerator {
 public:
  AnchorGenerator() = default;
  // sizes: per level the anchor sizes; aspect_ratios (h / w) shared by every level
  AnchorGenerator(std::vector<std::vector<double>> sizes, std::vector<double> aspect_ratios,
                  std::vector<int64_t> strides, double offset = 0.0);
  int64_t num_levels() const { return static_cast<int64_t>(strides_.size()); }
  int64_t num_cell_anchors() const;  // anchors per position (the same on every level)
  // level: cell anchors (A, 4) float32 xyxy
  const at::Tensor& cell_anchors(int64_t level) const { return cell_anchors_.at(level); }
  // grid_sizes: per level (h, w) -> per level (h * w * A, 4) float32 xyxy on `device`
  std::vector<at::Tensor> grid_anchors(const std::vector<std::pair<int64_t, int64_t>>& grid_sizes,
                                       const at::Device& device) const;

 private:
  std::vector<int64_t> strides_;
  double offset_ = 0.0;
  std::vector<at::Tensor> cell_anchors_;
};

// ROIPooler's assign_boxes_to_levels: floor(canonical_level + log2(sqrt(area) / canonical_size + 1e-8)), clamped to
// [min_level, max_level], minus min_level. boxes: (R, 4) -> (R) int64 in [0, max_level - min_level]
at::Tensor assign_boxes_to_levels(const at::Tensor& boxes, int64_t min_level, int64_t max_level,
                                  double canonical_box_size = 224.0, int64_t canonical_level = 4);

// detectron2 ROIPooler with ROIAlignV2 (aligned) over feature levels of strides 2^min_level..2^max_level.
class RoiPooler {
 public:
  RoiPooler() = default;
  RoiPooler(int64_t output_size, std::vector<int64_t> strides, int64_t sampling_ratio = 0, bool aligned = true,
            double canonical_box_size = 224.0, int64_t canonical_level = 4);
  // features: per level (N, C, H_l, W_l); boxes: per image (R_i, 4) input pixels -> (sum R_i, C, S, S)
  at::Tensor forward(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes) const;
  int64_t output_size() const { return output_size_; }

 private:
  int64_t output_size_ = 7, sampling_ratio_ = 0, min_level_ = 2, max_level_ = 5, canonical_level_ = 4;
  bool aligned_ = true;
  double canonical_box_size_ = 224.0;
  std::vector<int64_t> strides_;
};

// Per-image boxes to the ops' RoI format (batch index, x1, y1, x2, y2). boxes: per image (R_i, 4) -> (sum R_i, 5)
at::Tensor boxes_to_rois(const std::vector<at::Tensor>& boxes);

}  // namespace semaim::models::det

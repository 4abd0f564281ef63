// What a sample is labelled with: a class label, a soft label (mixup / cutmix / label smoothing), boxes with
// classes and instance masks (detection), or a label map (segmentation); the geometric parts follow the
// image through its geometry record (geometry.h).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "semaim/data/geometry.h"

namespace semaim::data {

// A sample's target. Every part but `label` is optional (undefined tensor: absent); a dataset fills the parts
// it has, and every sample of a dataset carries the same parts. Pixel coordinates are those of the image the
// target belongs to: the source image before the transforms, the output image after transform_target.
struct Target {
  int64_t label = -1;      // class index; -1: none (unlabeled data)
  at::Tensor soft_label;   // (K) float32 weight per class
  at::Tensor boxes;        // (M, 4) float32 xyxy pixel edges; defined with M = 0 for an image without objects
  at::Tensor box_classes;  // (M) int64, required with boxes
  at::Tensor masks;        // (M, H, W) uint8 instance masks (0/1), optional with boxes
  at::Tensor label_map;    // (H, W) integer class per pixel
  int64_t dropped_boxes = 0;  // boxes the geometry left without area, removed with their classes and masks
};

// Throws InputError(where, fault) when the parts do not fit the (height, width) image or each other: a label
// map or masks of another size, boxes that are not (M, 4) floats or have x1 < x0 or y1 < y0, classes or
// masks that are not M long, a soft label that is not a 1-D float vector.
void validate_target(const Target& t, int64_t height, int64_t width, const std::string& where);

// t in source pixels -> t in output pixels through the record: boxes map and clip (boxes left without area
// are dropped with their classes and masks and counted in dropped_boxes), masks and the label map take the
// nearest source pixel (0 / g.label_fill in the padding); label and soft label are unchanged. Validates t
// against the source size first (InputError naming `where`).
Target transform_target(const Geometry& g, const Target& t, const std::string& where);

}  // namespace semaim::data

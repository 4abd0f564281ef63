// Target validation and the geometry record applied to a whole target (boxes, classes, masks, label map).
#include "semaim/data/target.h"

#include "semaim/core/errors.h"

namespace semaim::data {
namespace {

std::string size_text(int64_t height, int64_t width) {
  return std::to_string(height) + "x" + std::to_string(width);
}

void validate_boxes(const Target& t, int64_t height, int64_t width, const std::string& where) {
  if (t.boxes.dim() != 2 || t.boxes.size(1) != 4 || !t.boxes.is_floating_point())
    throw InputError(where, "boxes must be an (M, 4) float tensor (x0, y0, x1, y1)");
  const int64_t m = t.boxes.size(0);
  const at::Tensor b = t.boxes.to(at::kFloat).contiguous();
  const float* p = b.data_ptr<float>();
  for (int64_t i = 0; i < m; ++i) {
    const float* r = p + 4 * i;
    if (!(r[2] >= r[0]) || !(r[3] >= r[1])) {  // also catches NaN
      throw InputError(where, "box " + std::to_string(i) + " (" + std::to_string(r[0]) + ", " +
                                  std::to_string(r[1]) + ", " + std::to_string(r[2]) + ", " +
                                  std::to_string(r[3]) + ") has " + (r[2] >= r[0] ? "y1 < y0" : "x1 < x0"));
    }
  }
  if (!t.box_classes.defined() || t.box_classes.dim() != 1 || t.box_classes.size(0) != m ||
      t.box_classes.is_floating_point()) {
    throw InputError(where, "boxes need an (M) integer tensor of classes with M = " + std::to_string(m));
  }
  if (t.masks.defined() &&
      (t.masks.dim() != 3 || t.masks.size(0) != m || t.masks.scalar_type() != at::kByte ||
       t.masks.size(1) != height || t.masks.size(2) != width)) {
    throw InputError(where, "masks must be (M, H, W) uint8 = (" + std::to_string(m) + ", " +
                                std::to_string(height) + ", " + std::to_string(width) + ") for a " +
                                size_text(height, width) + " image");
  }
}

}  // namespace

void validate_target(const Target& t, int64_t height, int64_t width, const std::string& where) {
  if (t.soft_label.defined() && (t.soft_label.dim() != 1 || !t.soft_label.is_floating_point()))
    throw InputError(where, "a soft label must be a (K) float tensor");
  if (t.boxes.defined()) {
    validate_boxes(t, height, width, where);
  } else if (t.box_classes.defined() || t.masks.defined()) {
    throw InputError(where, "box classes or masks without boxes");
  }
  if (t.label_map.defined()) {
    if (t.label_map.dim() != 2 || t.label_map.is_floating_point() || t.label_map.scalar_type() == at::kBool)
      throw InputError(where, "a label map must be an (H, W) integer tensor");
    if (t.label_map.size(0) != height || t.label_map.size(1) != width) {
      throw InputError(where, "label map is " + size_text(t.label_map.size(0), t.label_map.size(1)) +
                                  " but its image is " + size_text(height, width));
    }
  }
}

Target transform_target(const Geometry& g, const Target& t, const std::string& where) {
  validate_target(t, g.src_h, g.src_w, where);
  Target out;
  out.label = t.label;
  out.soft_label = t.soft_label;
  out.dropped_boxes = t.dropped_boxes;
  if (t.boxes.defined()) {
    const auto [boxes, keep] = transform_boxes(g, t.boxes);
    const at::Tensor kept = keep.nonzero().squeeze(1);
    out.dropped_boxes += boxes.size(0) - kept.size(0);
    out.boxes = boxes.index_select(0, kept);
    out.box_classes = t.box_classes.to(at::kLong).index_select(0, kept);
    if (t.masks.defined()) out.masks = transform_masks(g, t.masks.index_select(0, kept));
  }
  if (t.label_map.defined()) out.label_map = transform_label_map(g, t.label_map);
  return out;
}

}  // namespace semaim::data

// Applies a sample's geometry record (include/semaim/data/geometry.h) to boxes, instance masks and label
// maps: boxes map linearly and clip, masks and label maps take the nearest source pixel.
#include "semaim/data/geometry.h"

#include <algorithm>
#include <vector>

namespace semaim::data {
namespace {

// Source index of each of `count` content pixels starting at `first` of a resized axis: resized length
// `resized` covers source pixels [start, start + length). -> (count) int64
at::Tensor nearest_axis(int64_t start, int64_t length, int64_t resized, int64_t first, int64_t count,
                        bool reverse) {
  std::vector<int64_t> idx(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    const int64_t r = first + k;
    // floor((r + 0.5) * length / resized) in exact integer arithmetic.
    const int64_t s = std::min(length - 1, (2 * r + 1) * length / (2 * resized));
    idx[static_cast<size_t>(reverse ? count - 1 - k : k)] = start + s;
  }
  return at::tensor(idx, at::TensorOptions().dtype(at::kLong));
}

// content: (..., window.height, window.width) -> (..., out_h, out_w), `fill` in the padding
at::Tensor pad_content(const Geometry& g, const at::Tensor& content, int64_t fill) {
  if (g.out_h() == g.window.height && g.out_w() == g.window.width) return content;
  std::vector<int64_t> size = content.sizes().vec();
  size[size.size() - 2] = g.out_h();
  size[size.size() - 1] = g.out_w();
  at::Tensor out = at::full(size, fill, content.options());
  out.narrow(-2, 0, g.window.height).narrow(-1, 0, g.window.width).copy_(content);
  return out;
}

}  // namespace

std::pair<at::Tensor, at::Tensor> transform_boxes(const Geometry& g, const at::Tensor& boxes) {
  const at::Tensor b = boxes.to(at::kFloat);
  const double sx = static_cast<double>(g.resize_w) / static_cast<double>(g.box.width);
  const double sy = static_cast<double>(g.resize_h) / static_cast<double>(g.box.height);
  const auto w = static_cast<double>(g.window.width), h = static_cast<double>(g.window.height);
  auto axis = [&](int64_t col, double scale, int64_t box_start, int64_t window_start, double extent) {
    return ((b.select(1, col) - static_cast<double>(box_start)) * scale - static_cast<double>(window_start))
        .clamp(0.0, extent);
  };
  at::Tensor x0 = axis(0, sx, g.box.left, g.window.left, w), x1 = axis(2, sx, g.box.left, g.window.left, w);
  const at::Tensor y0 = axis(1, sy, g.box.top, g.window.top, h), y1 = axis(3, sy, g.box.top, g.window.top, h);
  if (g.flipped) {
    at::Tensor mirrored_x0 = w - x1;
    x1 = w - x0;
    x0 = mirrored_x0;
  }
  at::Tensor keep = (x1 > x0).logical_and(y1 > y0);
  return {at::stack({x0, y0, x1, y1}, 1), keep};
}

std::pair<at::Tensor, at::Tensor> nearest_source_indices(const Geometry& g) {
  return {nearest_axis(g.box.top, g.box.height, g.resize_h, g.window.top, g.window.height, false),
          nearest_axis(g.box.left, g.box.width, g.resize_w, g.window.left, g.window.width, g.flipped)};
}

at::Tensor transform_masks(const Geometry& g, const at::Tensor& masks) {
  const auto [rows, cols] = nearest_source_indices(g);
  return pad_content(g, masks.index_select(1, rows).index_select(2, cols), 0);
}

at::Tensor transform_label_map(const Geometry& g, const at::Tensor& map) {
  const auto [rows, cols] = nearest_source_indices(g);
  return pad_content(g, map.index_select(0, rows).index_select(1, cols).to(at::kLong), g.label_fill);
}

}  // namespace semaim::data

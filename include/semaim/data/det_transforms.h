// Large-scale jitter for detection (ViTDet's LSJ: detectron2 ResizeScale + FixedSizeCrop, with the pipeline's
// hflip) and ViTDet's test resize (ResizeShortestEdge with max_size, padded to a square), as geometry steps
// whose record the targets follow (transform_target), plus the instance filter that follows the record.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <utility>

#include "semaim/data/target.h"
#include "semaim/data/transforms.h"

namespace semaim::data {

// data.lsj_size / data.lsj_scale: the square side and the range the scale factor of the side is drawn from.
struct LsjConfig {
  int64_t size = 1024;
  std::array<double, 2> scale{0.1, 2.0};
};

// InputError("data.lsj_...", fault) for a size below 1 or a scale range that is not 0 < low <= high.
void validate_lsj(const LsjConfig& cfg);

// detectron2 ResizeScale: the (h, w) image resized, aspect kept, to fit (size * scale) square; sides rounded
// half to even (np.round), at least 1. -> {new_h, new_w}
std::pair<int64_t, int64_t> resize_scale_size(int64_t h, int64_t w, int64_t size, double scale);

// detectron2 ResizeShortestEdge(short_edge, max_size): the shorter side to short_edge unless the longer side
// would exceed max_size, then the longer side to max_size; sides rounded half up. -> {new_h, new_w}
std::pair<int64_t, int64_t> shortest_edge_size(int64_t h, int64_t w, int64_t short_edge, int64_t max_size);

// `large_scale_jitter`: scale factor uniform in cfg.scale (one draw), the whole image resized by
// resize_scale_size, a size x size window at offset round(U * (resized - size)) (one uniform for both axes,
// as FixedSizeCrop draws it) when the resized image is larger, and padded bottom / right to size x size.
std::shared_ptr<const GeometryTransform> make_large_scale_jitter(const LsjConfig& cfg);

// `resize_fit`: the evaluation counterpart, no randomness: shortest_edge_size(h, w, size, size) (the longer
// side becomes size) padded bottom / right to size x size.
std::shared_ptr<const GeometryTransform> make_resize_fit(int64_t size);

// Removes the instances whose mask lost every pixel through the geometry (a box with area can still cover no
// output pixel center), with their boxes and classes; counts them in t.dropped_boxes. No-op without masks.
void drop_vanished_instances(Target& t);

}  // namespace semaim::data

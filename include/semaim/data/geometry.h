// The geometry record of one sample (what the geometric transforms did: source box, resize, window, flip,
// padding) and the functions that apply the same record to boxes, instance masks and label maps, so targets
// follow the image exactly (the role of mmcv's img_shape / flip / pad_shape meta keys).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <utility>

namespace semaim::data {

// A crop box in pixels: rows [top, top + height), cols [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// Where a sample's output pixels come from, in the order the steps apply: `box` of the (src_h, src_w) source
// is resized to (resize_h, resize_w); `window` of that resized image is kept (the content), mirrored left to
// right when `flipped`, and placed at the top left of a (pad_h, pad_w) canvas when padded (pad_h = pad_w = 0:
// no padding, the output is the window). Decoders read only `box`, at a reduced scale when it allows.
struct Geometry {
  int64_t src_h = 0, src_w = 0;
  CropBox box;
  int64_t resize_h = 0, resize_w = 0;
  CropBox window;
  bool flipped = false;
  int64_t pad_h = 0, pad_w = 0;
  float image_fill = 0.0f;  // output value of padded image pixels (0 after normalization, as mmseg/mmdet pad)
  int64_t label_fill = 255;  // label-map value of padded pixels (the ignore index)

  int64_t out_h() const { return pad_h > 0 ? pad_h : window.height; }
  int64_t out_w() const { return pad_w > 0 ? pad_w : window.width; }
};

// boxes: (M, 4) float xyxy pixel edges in the source -> {(M, 4) float32 xyxy in output pixels, clipped to the
// content (the window), (M) bool keep: false for a box left without area}. Edges map linearly (a pixel spans
// [i, i + 1)), the same mapping the image's resize uses.
std::pair<at::Tensor, at::Tensor> transform_boxes(const Geometry& g, const at::Tensor& boxes);

// The source row of every content row and the source column of every content column, nearest neighbour on
// pixel centers (src = floor((dst + 0.5) * in / out), as PIL's NEAREST); columns run backwards when flipped.
// -> (window.height) int64, (window.width) int64
std::pair<at::Tensor, at::Tensor> nearest_source_indices(const Geometry& g);

// masks: (M, src_h, src_w) uint8 -> (M, out_h, out_w) uint8, nearest neighbour, 0 in the padding
at::Tensor transform_masks(const Geometry& g, const at::Tensor& masks);

// map: (src_h, src_w) integer -> (out_h, out_w) int64, nearest neighbour, g.label_fill in the padding
at::Tensor transform_label_map(const Geometry& g, const at::Tensor& map);

}  // namespace semaim::data

// Semantic-segmentation label maps: PNG files of class indices read as PIL's "unchanged" mode gives them
// (mmseg's LoadAnnotations), mmseg's reduce_zero_label, and label PNGs encoded for predictions.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace semaim::data {

// The label that no loss and no metric counts (mmseg's ignore_index, the padding value of label maps).
constexpr int64_t kIgnoreLabel = 255;

// Class indices of a grayscale or palette PNG: (H, W) uint8. Palette images give their indices (never the
// colours); 1-bit grayscale gives 0/1; 2- and 4-bit grayscale are scaled to 0..255 as PIL does. RGB, alpha and
// 16-bit images, files that are not PNGs, truncated or corrupt data, and images over kMaxImagePixels are an
// InputError naming the file.
at::Tensor read_label_map(const std::string& path);

// The same from bytes already read; `where` names them in errors.
at::Tensor decode_label_map(const std::vector<uint8_t>& bytes, const std::string& where);

// mmseg's reduce_zero_label: 0 (ADE20K's "other") becomes ignored (255), every other value v becomes v - 1,
// and 255 stays 255. labels: (H, W) uint8 -> (H, W) uint8
at::Tensor reduce_zero_label(const at::Tensor& labels);

// An RGB colour per class index.
using Palette = std::vector<std::array<uint8_t, 3>>;

// n distinct colours for class indices 0..n-1 (n <= 256): the PASCAL VOC colour map (the bits of the index
// spread over R, G and B from the high bit down), 0 black.
Palette class_palette(int64_t n);

// PNG bytes of (H, W) uint8 indices: an 8-bit palette image with `palette` (at most 256 colours; indices past
// its end are black), or 8-bit grayscale when `palette` is empty.
std::string encode_label_png(const at::Tensor& labels, const Palette& palette = {});

}  // namespace semaim::data

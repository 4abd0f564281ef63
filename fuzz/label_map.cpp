// Fuzz target: a segmentation label map as SegDataset reads it (data::decode_label_map: grayscale or palette
// PNG indices through libpng, the pixel cap in force), then mmseg's reduce_zero_label, and the prediction
// encoder's round trip: a decoded map written as a grayscale and as a palette PNG must decode to itself.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "semaim/data/label_map.h"

namespace {

using namespace semaim;

data::Palette full_palette() {
  data::Palette p(256);
  for (int i = 0; i < 256; ++i)
    p[static_cast<size_t>(i)] = {static_cast<uint8_t>(i), static_cast<uint8_t>(255 - i),
                                 static_cast<uint8_t>(i * 7)};
  return p;
}

void expect_round_trip(const at::Tensor& labels, const data::Palette& palette, const char* kind) {
  const std::string png = data::encode_label_png(labels, palette);
  const at::Tensor back =
      data::decode_label_map(std::vector<uint8_t>(png.begin(), png.end()), std::string("encoded ") + kind);
  if (!back.equal(labels)) fuzz::finding(std::string("a label map written as a ") + kind + " PNG decodes differently");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)fuzz::temp_dir();  // mutes the console log
  static const data::Palette palette = full_palette();
  const std::vector<uint8_t> bytes(data, data + size);
  at::Tensor labels;
  if (!fuzz::expect_input_error([&] { labels = data::decode_label_map(bytes, "fuzz input"); })) return 0;
  if (labels.dim() != 2 || labels.scalar_type() != at::kByte || !labels.is_contiguous())
    fuzz::finding("decode_label_map returned a tensor that is not a contiguous (H, W) uint8 map");
  const at::Tensor reduced = data::reduce_zero_label(labels);
  const at::Tensor expect = at::where(labels == 0, at::full_like(labels, 255),
                                      at::where(labels == 255, labels, labels - 1));
  if (!reduced.equal(expect)) fuzz::finding("reduce_zero_label differs from its definition");
  expect_round_trip(labels, {}, "grayscale");
  expect_round_trip(labels, palette, "palette");
  return 0;
}

// Fuzz target: a COCO instances JSON as data.dataset: coco reads it (CocoDataset: images, categories,
// annotations with polygons / compressed / uncompressed RLE, crowd flags), once for training (images without
// a non-crowd annotation skipped) and once for evaluation, then the targets of small images: boxes inside
// their image, classes below the category count, one (H, W) mask per box.
#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "fuzz_util.h"
#include "semaim/data/coco_dataset.h"

namespace {

using namespace semaim;

constexpr int64_t kMaxTargetPixels = 1 << 16;  // larger images are parsed but not rasterized (time per input)

void check_targets(const data::CocoDataset& set) {
  const auto classes = static_cast<int64_t>(set.classes().size());
  if (static_cast<int64_t>(set.category_ids().size()) != classes)
    fuzz::finding("category_ids and classes differ in length");
  for (int64_t i = 0; i < set.size() && i < 8; ++i) {
    const data::CocoImage& im = set.image(i);
    if (im.height * im.width > kMaxTargetPixels) continue;
    const data::Target t = set.target(i);
    const int64_t g = t.boxes.size(0);
    if (t.boxes.dim() != 2 || t.boxes.size(1) != 4 || t.box_classes.size(0) != g)
      fuzz::finding("target boxes and classes do not match");
    if (g > 0) {
      const at::Tensor b = t.boxes;
      const bool inside = (b.select(1, 0) >= 0).all().item<bool>() &&
                          (b.select(1, 1) >= 0).all().item<bool>() &&
                          (b.select(1, 2) <= im.width).all().item<bool>() &&
                          (b.select(1, 3) <= im.height).all().item<bool>() &&
                          (b.select(1, 2) > b.select(1, 0)).all().item<bool>() &&
                          (b.select(1, 3) > b.select(1, 1)).all().item<bool>();
      if (!inside) fuzz::finding("a target box without area or outside its image");
      if ((t.box_classes < 0).any().item<bool>() || (t.box_classes >= classes).any().item<bool>())
        fuzz::finding("a target class outside 0..K-1");
    }
    if (set.has_masks() && (!t.masks.defined() || t.masks.sizes() != at::IntArrayRef{g, im.height, im.width}))
      fuzz::finding("target masks are not (G, H, W)");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string images = fuzz::temp_dir().file("images");
  static const bool made = std::filesystem::create_directories(images) || true;
  (void)made;
  static const std::string json = fuzz::temp_dir().file("instances.json");
  fuzz::write_file(json, data, size);
  for (const bool skip_empty : {true, false}) {
    data::CocoOptions opt;
    opt.skip_empty = skip_empty;
    fuzz::expect_input_error([&] { check_targets(data::CocoDataset(json, images, opt)); });
  }
  return 0;
}

// Semantic-segmentation datasets (mmseg's BaseSegDataset / ADE20KDataset): image files paired by name with
// label-map PNGs, in the ADE20K layout or any image-folder + label-folder layout.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "semaim/data/dataset.h"
#include "semaim/data/label_map.h"

namespace semaim::data {

struct SegLayout {
  std::string img_dir, ann_dir;      // the image folder and its label-map folder (searched recursively)
  std::string img_suffix = ".jpg";  // an image <stem><img_suffix> pairs with <ann_dir>/<stem><seg_suffix>
  std::string seg_suffix = ".png";
  bool reduce_zero_label = false;   // label 0 ignored, v -> v - 1 (ADE20K)
  int64_t num_classes = 0;          // classes 0..K-1 after the reduction (required)
  int64_t ignore_index = kIgnoreLabel;
  std::vector<std::string> classes;  // names (empty: indices), K long when given
  bool skip_unpaired = false;        // an image without its label map: skipped and counted instead of an error
};

// The ADE20K layout: <root>/images/<split>/*.jpg with <root>/annotations/<split>/*.png, 150 classes,
// reduce_zero_label, class names from <root>/classes.txt (one per line) when it exists.
SegLayout ade20k_layout(const std::string& root, const std::string& split);

class SegDataset final : public Dataset {
 public:
  // Pairs every image of layout.img_dir with its label map (sorted by path). A missing folder, no images, an
  // image without a label map (unless skip_unpaired), num_classes < 1 or over 255, or a class list of another
  // length is an InputError naming the folder or file.
  explicit SegDataset(SegLayout layout);

  const std::string& name() const override { return name_; }
  int64_t size() const override { return images_->size(); }
  int64_t channels() const override { return 3; }
  int64_t label(int64_t) const override { return -1; }
  const std::vector<std::string>& classes() const override { return layout_.classes; }
  std::string source(int64_t i) const override { return images_->source(i); }
  // The label map of sample i after reduce_zero_label: (H, W) uint8 in `label_map`. BadImage naming the file
  // when it does not decode or holds a value that is neither a class nor the ignore index.
  Target target(int64_t i) const override;
  Geometry load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst) const override;
  // The image and its label map; BadImage also when their sizes differ.
  Geometry load_with_target(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                            Target* target) const override;

  const SegLayout& layout() const { return layout_; }
  const std::string& label_path(int64_t i) const { return labels_[static_cast<size_t>(i)]; }
  int64_t unpaired() const { return unpaired_; }  // images skipped for want of a label map

 private:
  SegLayout layout_;
  std::string name_;
  std::shared_ptr<FileDataset> images_;
  std::vector<std::string> labels_;
  int64_t unpaired_ = 0;
};

}  // namespace semaim::data

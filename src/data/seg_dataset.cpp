// Image / label-map pairs as mmseg's BaseSegDataset lists them (img_suffix, seg_suffix, same stem), with the
// label maps decoded as LoadAnnotations does (reduce_zero_label) and checked against the image and the classes.
#include "semaim/data/seg_dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/decode.h"

namespace semaim::data {
namespace fs = std::filesystem;

SegLayout ade20k_layout(const std::string& root, const std::string& split) {
  SegLayout l;
  l.img_dir = (fs::path(root) / "images" / split).string();
  l.ann_dir = (fs::path(root) / "annotations" / split).string();
  l.reduce_zero_label = true;
  l.num_classes = 150;
  const fs::path names = fs::path(root) / "classes.txt";
  if (fs::exists(names)) {
    std::ifstream in(names);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) l.classes.push_back(line);
    l.num_classes = static_cast<int64_t>(l.classes.size());
  }
  return l;
}

namespace {

void check_layout(const SegLayout& l) {
  for (const auto* d : {&l.img_dir, &l.ann_dir})
    if (!fs::is_directory(*d)) throw InputError(*d, "segmentation data folder does not exist");
  if (l.num_classes < 1 || l.num_classes > 255)
    throw InputError(l.img_dir, "num_classes must be 1..255 for uint8 label maps, got " +
                                    std::to_string(l.num_classes));
  if (!l.classes.empty() && static_cast<int64_t>(l.classes.size()) != l.num_classes)
    throw InputError(l.img_dir, std::to_string(l.classes.size()) + " class names for " +
                                    std::to_string(l.num_classes) + " classes");
}

}  // namespace

SegDataset::SegDataset(SegLayout layout) : layout_(std::move(layout)), name_(layout_.img_dir) {
  check_layout(layout_);
  std::vector<std::string> paths;
  for (const auto& e : fs::recursive_directory_iterator(layout_.img_dir))
    if (e.is_regular_file() && e.path().string().ends_with(layout_.img_suffix)) paths.push_back(e.path().string());
  std::sort(paths.begin(), paths.end());
  if (paths.empty())
    throw InputError(layout_.img_dir, "no images ending in '" + layout_.img_suffix + "'");
  std::vector<ImageFile> files;
  for (const auto& p : paths) {
    const std::string rel = fs::relative(p, layout_.img_dir).string();
    const std::string label =
        (fs::path(layout_.ann_dir) / (rel.substr(0, rel.size() - layout_.img_suffix.size()) + layout_.seg_suffix))
            .string();
    if (!fs::exists(label)) {
      if (!layout_.skip_unpaired)
        throw InputError(p, "no label map " + label + " (set skip_unpaired to skip such images)");
      ++unpaired_;
      continue;
    }
    files.push_back({p, -1});
    labels_.push_back(label);
  }
  if (files.empty()) throw InputError(layout_.img_dir, "no image has a label map in " + layout_.ann_dir);
  if (unpaired_) core::log_warn(layout_.img_dir + ": skipped " + std::to_string(unpaired_) + " images without a label map");
  images_ = std::make_shared<FileDataset>(name_, std::move(files), std::vector<std::string>{});
}

Target SegDataset::target(int64_t i) const {
  const std::string& path = label_path(i);
  at::Tensor map;
  try {
    map = read_label_map(path);
  } catch (const BadImage&) {
    throw;
  } catch (const InputError& e) {
    throw BadImage(e.what());
  }
  if (layout_.reduce_zero_label) map = reduce_zero_label(map);
  const at::Tensor unknown = (map >= layout_.num_classes) & (map != layout_.ignore_index);
  if (unknown.any().item<bool>())
    throw BadImage(path, "label value " + std::to_string(map.masked_select(unknown)[0].item<int>()) +
                             " is neither a class (0.." + std::to_string(layout_.num_classes - 1) +
                             (layout_.reduce_zero_label ? " after reduce_zero_label" : "") +
                             ") nor the ignore index " + std::to_string(layout_.ignore_index));
  Target t;
  t.label_map = map;
  return t;
}

Geometry SegDataset::load_into(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst) const {
  return images_->load_into(i, pipeline, rng, dst);
}

Geometry SegDataset::load_with_target(int64_t i, const Pipeline& pipeline, std::mt19937_64& rng, float* dst,
                                      Target* target) const {
  *target = this->target(i);
  try {
    return images_->load_labelled(i, pipeline, rng, dst, target->label_map);
  } catch (const BadImage& e) {
    throw BadImage(label_path(i) + " / " + e.what());
  }
}

}  // namespace semaim::data

// data.* keys -> the data area's typed settings.
#include "semaim/data/settings.h"

#include <array>
#include <cstdlib>
#include <filesystem>

#include "semaim/core/errors.h"
#include "semaim/data/coco_dataset.h"
#include "semaim/data/idx.h"

namespace semaim::data {

AugmentConfig augment_config(const config::Config& cfg, int64_t out_size, int64_t channels, bool random) {
  const std::string where = cfg.path().empty() ? "config" : cfg.path();
  AugmentConfig a;
  a.out_size = out_size;
  auto pair = [&](const char* key) {
    auto v = cfg.get_floats(key);
    if (v.size() != 2 || v[0] > v[1])
      throw InputError(where, std::string(key) + " must be [low, high] with low <= high");
    return std::array<double, 2>{v[0], v[1]};
  };
  a.scale = pair("data.crop_scale");
  a.ratio = pair("data.crop_ratio");
  a.hflip = cfg.get_float("data.hflip");
  a.mean = cfg.get_floats("data.mean");
  a.std = cfg.get_floats("data.std");
  a.interpolation = cfg.get_string("data.interpolation");
  a.random = random;
  a.eval_crop_pct = cfg.get_float("data.eval_crop_pct");
  a.transforms = cfg.get_strings(random ? "data.transforms" : "data.eval_transforms");
  a.auto_augment = cfg.get_string("data.auto_augment");
  a.reprob = cfg.get_float("data.reprob");
  a.remode = cfg.get_string("data.remode");
  a.recount = cfg.get_int("data.recount");
  const auto chans = static_cast<size_t>(channels);
  if (a.mean.size() != chans || a.std.size() != chans)
    throw InputError(
        where, "data.mean and data.std need " + std::to_string(chans) + " values (one per input channel)");
  return a;
}

LsjConfig lsj_config(const config::Config& cfg) {
  LsjConfig l;
  l.size = cfg.get_int("data.lsj_size");
  const auto scale = cfg.get_floats("data.lsj_scale");
  if (scale.size() != 2) throw InputError("data.lsj_scale", "needs two values [low, high]");
  l.scale = {scale[0], scale[1]};
  validate_lsj(l);
  return l;
}

LoaderConfig loader_config(const config::Config& cfg, int64_t batch_size, const AugmentConfig& augment) {
  LoaderConfig l;
  l.batch_size = batch_size;
  l.num_workers = cfg.get_int("data.num_workers");
  l.prefetch = cfg.get_int("data.prefetch");
  l.shuffle = true;
  l.drop_last = true;
  l.seed = static_cast<uint64_t>(cfg.get_int("run.seed"));
  l.augment = augment;
  l.fail_on_bad_image = cfg.get_string("data.on_bad_image") == "fail";
  l.pin_memory = cfg.get_bool("data.pin_memory");
  return l;
}

std::shared_ptr<const Dataset> load_dataset(const config::Config& cfg, const std::string& split,
                                            int64_t channels) {
  const std::string kind = cfg.get_string("data.dataset");
  std::string root = cfg.get_string("data.root");
  if (root == "~" || root.rfind("~/", 0) == 0) {  // a home-relative root, as a shell would expand it
    const char* home = std::getenv("HOME");
    if (home && *home) root = std::string(home) + root.substr(1);
  }
  const bool train = split == "train";
  const int64_t limit = train ? cfg.get_int("data.limit") : 0;
  auto under_root = [&](const std::string& rel) {
    return std::filesystem::path(rel).is_absolute() ? rel : (std::filesystem::path(root) / rel).string();
  };
  std::shared_ptr<const Dataset> set;
  if (kind == "fashion_mnist") {
    set = std::make_shared<const MemoryDataset>(load_fashion_mnist(root, split));
  } else if (kind == "image_folder") {
    set = FileDataset::image_folder(under_root(cfg.get_string(train ? "data.train_dir" : "data.val_dir")));
  } else if (kind == "image_list") {
    set = FileDataset::image_list(root,
                                  under_root(cfg.get_string(train ? "data.train_list" : "data.val_list")));
  } else if (kind == "unlabeled_folder") {
    if (!train) {
      throw InputError("data.dataset",
                       "unlabeled_folder has no labelled evaluation split; the linear probe needs "
                       "image_folder or image_list");
    }
    set = FileDataset::unlabeled_folder(under_root(cfg.get_string("data.train_dir")));
  } else if (kind == "coco") {
    const CocoLayout l = coco_layout(root, train ? "train" : "val");
    CocoOptions opt;
    opt.skip_empty = train && cfg.get_bool("data.skip_empty_images");
    set = std::make_shared<const CocoDataset>(l.annotations, l.image_dir, opt);
  } else {
    throw InputError("data.dataset", "unknown dataset kind '" + kind + "'");
  }
  set = take_first(std::move(set), limit);
  if (set->channels() != channels)
    throw InputError(root, "dataset images have " + std::to_string(set->channels()) +
                               " channel(s) but model.in_channels is " + std::to_string(channels));
  return set;
}

}  // namespace semaim::data

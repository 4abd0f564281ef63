// Config -> typed settings of each area, with cross-key validation.
#include "semaim/train/builders.h"

#include <cstdlib>
#include <filesystem>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include "semaim/config/errors.h"

namespace semaim::train {

models::AimConfig model_config(const config::Config& cfg) {
  models::AimConfig m = models::aim_config_by_name(cfg.get_string("model.name"));
  auto over = [&](const char* key, int64_t& field) {
    if (int64_t v = cfg.get_int(key); v > 0) field = v;
  };
  over("model.img_size", m.vit.img_size);
  over("model.in_chans", m.vit.in_chans);
  over("model.embed_dim", m.vit.embed_dim);
  over("model.depth", m.vit.depth);
  over("model.num_heads", m.vit.num_heads);
  over("model.decoder_depth", m.decoder_depth);
  m.head = cfg.get_string("model.head");
  m.attention = cfg.get_string("model.attention");
  const std::string where = cfg.path().empty() ? "config" : cfg.path();
  if (m.vit.embed_dim % m.vit.num_heads != 0)
    throw InputError(where, "model.embed_dim " + std::to_string(m.vit.embed_dim) +
                                " is not divisible by model.num_heads " + std::to_string(m.vit.num_heads));
  if (m.vit.depth % m.decoder_depth != 0)
    throw InputError(where, "model.decoder_depth " + std::to_string(m.decoder_depth) +
                                " does not divide model.depth " + std::to_string(m.vit.depth));
  if (m.vit.img_size % m.vit.patch_size != 0)
    throw InputError(where, "model.img_size " + std::to_string(m.vit.img_size) +
                                " is not a multiple of the patch size " + std::to_string(m.vit.patch_size));
  return m;
}

ordering::OrderingConfig ordering_config(const config::Config& cfg) {
  ordering::OrderingConfig o;
  o.strategy = ordering::parse_strategy(cfg.get_string("ordering.strategy"));
  o.source = ordering::parse_source(cfg.get_string("ordering.source"));
  o.center_windows = cfg.get_ints("ordering.center_windows");
  o.tie_noise = cfg.get_float("ordering.tie_noise");
  o.parts_k = cfg.get_int("ordering.parts_k");
  o.parts_iters = cfg.get_int("ordering.parts_iters");
  if (cfg.get_string("ordering.source_model") == "ema" && !cfg.get_bool("train.ema"))
    throw InputError(cfg.path().empty() ? "config" : cfg.path(),
                     "ordering.source_model is 'ema' but train.ema is false");
  return o;
}

models::TargetConfig target_config(const config::Config& cfg) {
  models::TargetConfig t;
  t.blur_kernel = cfg.get_int("target.blur_kernel");
  t.blur_sigma = cfg.get_float("target.blur_sigma");
  t.norm_pix = cfg.get_bool("target.norm_pix");
  t.loss = cfg.get_string("target.loss");
  return t;
}

data::AugmentConfig augment_config(const config::Config& cfg, bool random) {
  const std::string where = cfg.path().empty() ? "config" : cfg.path();
  data::AugmentConfig a;
  a.out_size = model_config(cfg).vit.img_size;
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
  const auto chans = static_cast<size_t>(model_config(cfg).vit.in_chans);
  if (a.mean.size() != chans || a.std.size() != chans)
    throw InputError(
        where, "data.mean and data.std need " + std::to_string(chans) + " values (one per input channel)");
  return a;
}

data::LoaderConfig loader_config(const config::Config& cfg) {
  data::LoaderConfig l;
  l.batch_size = cfg.get_int("train.batch_size");
  l.num_workers = cfg.get_int("data.num_workers");
  l.prefetch = cfg.get_int("data.prefetch");
  l.shuffle = true;
  l.drop_last = true;
  l.seed = static_cast<uint64_t>(cfg.get_int("run.seed"));
  l.augment = augment_config(cfg, /*random=*/true);
  l.fail_on_bad_image = cfg.get_string("data.on_bad_image") == "fail";
  l.pin_memory = cfg.get_bool("data.pin_memory");
  return l;
}

eval::LinprobeConfig linprobe_config(const config::Config& cfg) {
  eval::LinprobeConfig p;
  p.epochs = cfg.get_int("linprobe.epochs");
  p.batch_size = cfg.get_int("linprobe.batch_size");
  p.base_lr = cfg.get_float("linprobe.base_lr");
  p.momentum = cfg.get_float("linprobe.momentum");
  p.weight_decay = cfg.get_float("linprobe.weight_decay");
  p.pool = cfg.get_string("linprobe.pool");
  p.train_limit = cfg.get_int("linprobe.train_limit");
  p.test_limit = cfg.get_int("linprobe.test_limit");
  p.feature_batch = cfg.get_int("linprobe.feature_batch");
  p.seed = static_cast<uint64_t>(cfg.get_int("run.seed"));
  p.num_workers = cfg.get_int("data.num_workers");
  p.fail_on_bad_image = cfg.get_string("data.on_bad_image") == "fail";
  return p;
}

std::shared_ptr<const data::Dataset> load_dataset(const config::Config& cfg, const std::string& split) {
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
  std::shared_ptr<const data::Dataset> set;
  if (kind == "fashion_mnist") {
    set = std::make_shared<const data::MemoryDataset>(data::load_fashion_mnist(root, split));
  } else if (kind == "image_folder") {
    set = data::FileDataset::image_folder(
        under_root(cfg.get_string(train ? "data.train_dir" : "data.val_dir")));
  } else if (kind == "image_list") {
    set = data::FileDataset::image_list(
        root, under_root(cfg.get_string(train ? "data.train_list" : "data.val_list")));
  } else if (kind == "unlabeled_folder") {
    if (!train) {
      throw InputError("data.dataset",
                       "unlabeled_folder has no labelled evaluation split; the linear probe needs "
                       "image_folder or image_list");
    }
    set = data::FileDataset::unlabeled_folder(under_root(cfg.get_string("data.train_dir")));
  } else {
    throw InputError("data.dataset", "unknown dataset kind '" + kind + "'");
  }
  set = data::take_first(std::move(set), limit);
  const int64_t chans = model_config(cfg).vit.in_chans;
  if (set->channels() != chans)
    throw InputError(root, "dataset images have " + std::to_string(set->channels()) +
                               " channel(s) but model.in_chans is " + std::to_string(chans));
  return set;
}

at::Device select_device(const config::Config& cfg) {
  const std::string d = cfg.get_string("run.device");
  const bool has_cuda = torch::cuda::is_available();
  if (d == "cuda" && !has_cuda)
    throw InputError("run.device", "'cuda' requested but no CUDA device is available");
  return (d == "cuda" || (d == "auto" && has_cuda)) ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
}

std::string run_dir(const config::Config& cfg) {
  std::string name = cfg.get_string("run.name");
  if (name.empty()) name = cfg.path().empty() ? "default" : std::filesystem::path(cfg.path()).stem().string();
  return (std::filesystem::path(cfg.get_string("run.output_dir")) / name).string();
}

void configure_threads(const config::Config& cfg) {
  int64_t n = cfg.get_int("run.threads");
  if (n == 0) {
    const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
    n = std::max<int64_t>(1, cores - cfg.get_int("data.num_workers") / 2);
  }
  at::set_num_threads(static_cast<int>(n));
}

models::AimVit build_model(const config::Config& cfg) {
  at::manual_seed(static_cast<uint64_t>(cfg.get_int("run.seed")));
  return models::AimVit(model_config(cfg));
}

}  // namespace semaim::train

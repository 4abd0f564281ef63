// `semaim visualize` (a checkpoint's picture rows for a folder of images or the first validation images) and the
// pretraining hook that sends the same rows of a fixed batch to TensorBoard (visualize.h).
#include <filesystem>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/settings.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/engine/run.h"
#include "semaim/io/atomic_file.h"
#include "semaim/io/safetensors.h"
#include "semaim/io/tensorboard.h"
#include "semaim/models/weights.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/predict_inputs.h"
#include "semaim/tasks/visualize.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

// The two-stream model of a pretraining checkpoint, its weights loaded strictly (every key, same shapes). A
// feature-target run's head predicts target_dim values per patch (the file's "arch" metadata), not pixels.
std::pair<models::AimVit, std::string> load_checkpoint(const config::Config& cfg, const std::string& path) {
  std::error_code ec;
  if (path.empty() || !fs::exists(path, ec)) throw InputError(path, "--checkpoint: no such file or directory");
  std::string file = path;
  if (fs::is_directory(path, ec) || fs::path(path).extension() == ".json")
    file = engine::CheckpointManager::resolve(path).weights;
  const io::SafetensorsFile st = io::load_safetensors(file);
  models::AimConfig mc = aim_config(cfg);
  if (auto it = st.metadata.find("arch"); it != st.metadata.end()) {
    const nlohmann::json arch = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (arch.is_object() && arch.contains("target_dim") && arch["target_dim"].is_number_integer())
      mc.target_dim = arch["target_dim"].get<int64_t>();
  }
  models::AimVit model(mc);
  models::LoadOptions o;
  o.where = file;
  models::load_weights(*model, st.tensors, o);
  return {model, file};
}

// "N": a positive count of validation images; anything else is a path.
bool is_count(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The images and the PNG path of each.
struct Inputs {
  std::shared_ptr<const data::Dataset> set;
  std::vector<std::string> outs;
};

Inputs list_inputs(const config::Config& cfg, const VisualizeOptions& opts, int64_t chans) {
  Inputs in;
  if (is_count(opts.images)) {
    const int64_t n = std::stoll(opts.images);
    if (n <= 0) throw InputError("--images", "the count of validation images must be positive, got " + opts.images);
    in.set = data::take_first(data::load_dataset(cfg, "test", chans), n);
    for (int64_t i = 0; i < in.set->size(); ++i)
      in.outs.push_back((fs::path(opts.out_dir) / (std::to_string(i) + ".png")).string());
    return in;
  }
  const PredictInputs pi = PredictInputs::list(opts.images);
  std::vector<data::ImageFile> files;
  for (const auto& p : pi.paths) {
    files.push_back({p, -1});
    in.outs.push_back(pi.output_for(p, opts.out_dir, ".png").string());
  }
  in.set = std::make_shared<data::FileDataset>("--images " + opts.images, files, std::vector<std::string>{});
  return in;
}

}  // namespace

// -> (count, C, H, W)
at::Tensor load_eval_images(const config::Config& cfg, const data::Dataset& set, int64_t img_size, int64_t chans,
                            int64_t begin, int64_t count) {
  const int64_t have = set.channels();
  if (have != chans && !(have == 3 && chans == 1))
    throw InputError(set.name(), "images have " + std::to_string(have) + " channel(s) but the model reads " +
                                     std::to_string(chans));
  // The model's normalization (one value per model channel; a single value broadcasts over the file's three).
  const data::Pipeline pipe = data::Pipeline::build(data::augment_config(cfg, img_size, chans, false), have);
  const int64_t side = pipe.out_size();
  at::Tensor out = at::empty({count, have, side, side}, at::kFloat);
  std::mt19937_64 rng(0);  // the evaluation transforms draw nothing
  for (int64_t i = 0; i < count; ++i) set.load_into(begin + i, pipe, rng, out[i].data_ptr<float>());
  return have == chans ? out : out.mean(1, /*keepdim=*/true);
}

int64_t visualize(const config::Config& cfg, const VisualizeOptions& opts) {
  if (opts.quiet) core::set_log_quiet(true);
  const engine::RunSettings run = engine::RunSettings::read(cfg);
  at::set_num_threads(static_cast<int>(run.threads));
  const at::Device device = engine::select_device(run.device);
  const PictureSettings s = picture_settings(cfg, opts.strategies);
  auto [model, file] = load_checkpoint(cfg, opts.checkpoint);
  model->to(device);
  model->eval();
  const models::VitConfig& v = model->vit_config();
  const Inputs in = list_inputs(cfg, opts, v.in_chans);
  std::error_code ec;
  fs::create_directories(opts.out_dir, ec);
  if (ec) throw RuntimeFailure("cannot create " + opts.out_dir + ": " + ec.message());
  for (int64_t i = 0; i < in.set->size(); ++i) {
    const at::Tensor img = load_eval_images(cfg, *in.set, v.img_size, v.in_chans, i, 1);
    const PictureMaps maps = picture_maps(*model, img.to(device), {i}, s);
    io::atomic_write(in.outs[static_cast<size_t>(i)], encode_png(picture_row(maps, img, 0, s)));
  }
  core::log_info("visualize: " + std::to_string(in.set->size()) + " picture rows of " + file + " in " +
                 opts.out_dir);
  return in.set->size();
}

PicturesHook::PicturesHook(const config::Config& cfg, const engine::RunContext& ctx) {
  const int64_t every = cfg.get_int("log.picture_every_steps");
  if (every <= 0 || !cfg.get_bool("log.tensorboard") || !ctx.rank0()) return;
  settings_ = picture_settings(cfg, {});
  const models::VitConfig v = aim_config(cfg).vit;
  const auto set = data::take_first(data::load_dataset(cfg, "test", v.in_chans), cfg.get_int("log.picture_images"));
  imgs_ = load_eval_images(cfg, *set, v.img_size, v.in_chans, 0, set->size());
  writer_ = std::make_unique<io::TensorBoardWriter>((fs::path(ctx.run.dir) / "pictures").string());
  every_ = every;
}

PicturesHook::~PicturesHook() = default;

void PicturesHook::maybe_log(int64_t step, models::AimVitImpl& model) {
  if (every_ <= 0 || step % every_ != 0) return;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<int64_t> ids(static_cast<size_t>(imgs_.size(0)));
  std::iota(ids.begin(), ids.end(), 0);
  PictureMaps maps;
  try {
    maps = picture_maps(model, imgs_.to(model.cls_token().device()), ids, settings_);
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  for (int64_t i = 0; i < imgs_.size(0); ++i)
    writer_->add_image("pictures/" + std::to_string(i), encode_png(picture_row(maps, imgs_, i, settings_)), step);
  writer_->flush();
}

}  // namespace semaim::tasks

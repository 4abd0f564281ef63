// Linear-probe and export jobs behind `semaim linprobe` and `semaim export`.
#include "semaim/train/jobs.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "semaim/config/errors.h"
#include "semaim/io/atomic_file.h"
#include "semaim/io/log.h"
#include "semaim/models/aim.h"
#include "semaim/train/builders.h"
#include "semaim/train/checkpoint.h"
#include "semaim/train/weights.h"

namespace semaim::train {

namespace fs = std::filesystem;

eval::LinprobeResult run_linprobe_job(const config::Config& cfg, const LinprobeJobOptions& opts) {
  if (opts.quiet) io::set_log_quiet(true);
  configure_threads(cfg);
  const at::Device device = select_device(cfg);
  models::AimVit model = build_model(cfg);
  std::string source = "random init (seed " + std::to_string(cfg.get_int("run.seed")) + ")";
  if (!opts.random_init) {
    CheckpointPaths ck = CheckpointManager::resolve(opts.checkpoint.empty() ? run_dir(cfg) : opts.checkpoint);
    auto w = io::load_safetensors(ck.weights);
    load_module_weights(*model, w.tensors, ck.weights);
    source = ck.weights;
  }
  model->to(device);
  model->eval();
  const auto train = load_dataset(cfg, "train");
  const auto test = load_dataset(cfg, "test");
  io::log_info("linear probe of " + source + " (" + cfg.get_string("linprobe.pool") + " features)");
  eval::FeatureFn features = [&](const at::Tensor& imgs) {
    return model->encode(imgs.to(device)).to(at::kCPU);
  };
  eval::LinprobeResult r =
      eval::run_linprobe(features, train, test, augment_config(cfg, /*random=*/false), linprobe_config(cfg));
  nlohmann::json j{{"source", source},
                   {"top1_percent", r.top1},
                   {"train_top1_percent", r.train_top1},
                   {"n_train", r.n_train},
                   {"n_test", r.n_test},
                   {"bad_images", r.bad_images},
                   {"feature_dim", r.feature_dim},
                   {"pool", cfg.get_string("linprobe.pool")},
                   {"feature_seconds", r.feature_seconds},
                   {"train_seconds", r.train_seconds}};
  std::string out = opts.out_json;
  if (out.empty()) {
    fs::create_directories(run_dir(cfg));
    out = (fs::path(run_dir(cfg)) / (opts.random_init ? "linprobe_random.json" : "linprobe.json")).string();
  }
  io::atomic_write(out, j.dump(2) + "\n");
  io::log_info("linear probe top-1 " + std::to_string(r.top1) + "% (train " + std::to_string(r.train_top1) +
               "%), written to " + out);
  return r;
}

int64_t export_encoder(const std::string& checkpoint, const std::string& out) {
  CheckpointPaths ck = CheckpointManager::resolve(checkpoint);
  auto w = io::load_safetensors(ck.weights);
  io::NamedTensors enc;
  for (auto& [k, t] : w.tensors)
    if (models::AimVitImpl::is_encoder_key(k)) enc.emplace_back(k, t);
  if (enc.empty()) throw InputError(ck.weights, "no encoder weights (timm keys) in this file");
  std::map<std::string, std::string> meta;
  for (const char* k : {"arch", "model"})
    if (w.metadata.count(k)) meta[k] = w.metadata.at(k);
  meta["format"] = "semaim-vit-encoder";
  meta["source"] = ck.weights;
  io::save_safetensors(out, enc, meta);
  io::log_info("exported " + std::to_string(enc.size()) + " encoder tensors (timm names) to " + out);
  return static_cast<int64_t>(enc.size());
}

}  // namespace semaim::train

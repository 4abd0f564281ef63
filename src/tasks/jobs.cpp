// Linear-probe and export tasks behind `semaim linprobe` and `semaim export`.
#include "semaim/tasks/jobs.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/settings.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/engine/run.h"
#include "semaim/engine/settings.h"
#include "semaim/io/atomic_file.h"
#include "semaim/models/weights.h"
#include "semaim/tasks/finetune.h"
#include "semaim/tasks/init_weights.h"
#include "semaim/tasks/models.h"

namespace semaim::tasks {
namespace {

// The cached probe's settings: the shared training keys of linprobe.* as the reference protocol reads them,
// plus the probe's own.
eval::LinprobeConfig linprobe_config(const config::Config& cfg) {
  const engine::TrainSettings train = engine::TrainSettings::read(cfg, "linprobe");
  eval::LinprobeConfig p;
  p.epochs = train.epochs;
  p.batch_size = train.batch_size;
  p.base_lr = train.base_lr;
  p.weight_decay = train.weight_decay;
  p.momentum = cfg.get_float("linprobe.momentum");
  p.pool = cfg.get_string("linprobe.pool");
  p.train_limit = cfg.get_int("linprobe.train_limit");
  p.test_limit = cfg.get_int("linprobe.test_limit");
  p.feature_batch = cfg.get_int("linprobe.feature_batch");
  p.seed = static_cast<uint64_t>(cfg.get_int("run.seed"));
  p.num_workers = cfg.get_int("data.num_workers");
  p.fail_on_bad_image = cfg.get_string("data.on_bad_image") == "fail";
  return p;
}

}  // namespace

namespace fs = std::filesystem;

namespace {

// MAE main_linprobe through the classification task; the result in the cached protocol's JSON shape.
eval::LinprobeResult linprobe_reference(const config::Config& cfg, const LinprobeOptions& opts) {
  const engine::RunSettings run = engine::RunSettings::read(cfg);
  LinearProbeRun probe;
  probe.init = opts.random_init ? "" : (opts.checkpoint.empty() ? run.dir : opts.checkpoint);
  probe.subdir = opts.random_init ? "linprobe_random" : "linprobe";
  FinetuneOptions fo;
  fo.resume = "auto";  // a preempted 90-epoch probe continues where it stopped
  fo.quiet = opts.quiet;
  const FinetuneResult r = linear_probe_reference(cfg, probe, fo);
  eval::LinprobeResult out;
  out.top1 = r.top1;
  out.n_test = r.n_val;
  out.train_seconds = r.seconds;
  const nlohmann::json j{{"source", probe.init.empty() ? "random init" : probe.init},
                         {"protocol", "reference"},
                         {"top1_percent", r.top1},
                         {"top5_percent", r.top5},
                         {"best_top1_percent", r.best_top1},
                         {"n_test", r.n_val},
                         {"pool", cfg.get_string("linprobe.pool")},
                         {"optimizer", cfg.get_string("linprobe.optimizer")},
                         {"train_seconds", r.seconds},
                         {"run_dir", r.run_dir}};
  const std::string path =
      opts.out_json.empty()
          ? (fs::path(run.dir) / (opts.random_init ? "linprobe_random.json" : "linprobe.json")).string()
          : opts.out_json;
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path());
  io::atomic_write(path, j.dump(2) + "\n");
  core::log_info("linear probe (reference protocol) top-1 " + std::to_string(r.top1) + "%, written to " +
                 path);
  return out;
}

}  // namespace

eval::LinprobeResult linprobe(const config::Config& cfg, const LinprobeOptions& opts) {
  if (cfg.get_string("linprobe.protocol") == "reference") return linprobe_reference(cfg, opts);
  if (opts.quiet) core::set_log_quiet(true);
  const engine::RunSettings run = engine::RunSettings::read(cfg);
  at::set_num_threads(static_cast<int>(run.threads));
  const at::Device device = engine::select_device(run.device);
  std::string source;
  models::VitEncoder enc =
      frozen_encoder(cfg, opts.random_init, opts.checkpoint.empty() ? run.dir : opts.checkpoint, source);
  enc->to(device);
  const int64_t chans = enc->vit_config().in_chans;
  const auto train = data::load_dataset(cfg, "train", chans);
  const auto test = data::load_dataset(cfg, "test", chans);
  core::log_info("linear probe of " + source + " (" + cfg.get_string("linprobe.pool") + " features)");
  eval::FeatureFn features = [&](const at::Tensor& imgs) {
    return enc->forward_features(imgs.to(device)).to(at::kCPU);
  };
  eval::LinprobeResult r = eval::run_linprobe(
      features, train, test, data::augment_config(cfg, enc->vit_config().img_size, chans, /*random=*/false),
      linprobe_config(cfg));
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
    fs::create_directories(run.dir);
    out = (fs::path(run.dir) / (opts.random_init ? "linprobe_random.json" : "linprobe.json")).string();
  }
  io::atomic_write(out, j.dump(2) + "\n");
  core::log_info("linear probe top-1 " + std::to_string(r.top1) + "% (train " + std::to_string(r.train_top1) +
                 "%), written to " + out);
  return r;
}

namespace {

// Refuses an output path that is (or names the same file as) one of the checkpoint's files: writing it would
// destroy the checkpoint being exported.
void check_export_target(const engine::CheckpointPaths& ck, const std::string& out) {
  for (const std::string& f : {ck.weights, ck.state, ck.manifest}) {
    std::error_code ec;
    const bool same = fs::weakly_canonical(out, ec) == fs::weakly_canonical(f, ec) ||
                      (fs::exists(out, ec) && fs::equivalent(out, f, ec));
    if (same) throw InputError(out, "is the checkpoint's own file " + f + "; choose another output path");
  }
}

// The encoder keys a checkpoint must hold: those of a ViT of its depth (the arch metadata, else the highest
// block index present); the key names depend on nothing else, so a minimal-width encoder lists them.
std::vector<std::string> required_encoder_keys(const io::SafetensorsFile& w, const io::NamedTensors& enc) {
  int64_t depth = 0;
  if (w.metadata.count("arch")) {
    const auto arch = nlohmann::json::parse(w.metadata.at("arch"), nullptr, /*allow_exceptions=*/false);
    if (arch.is_object() && arch.contains("depth") && arch["depth"].is_number_integer())
      depth = arch["depth"].get<int64_t>();
  }
  if (depth <= 0)
    for (const auto& [k, t] : enc)
      if (k.rfind("blocks.", 0) == 0) depth = std::max<int64_t>(depth, std::atoll(k.c_str() + 7) + 1);
  models::VitConfig c;
  c.img_size = c.patch_size = 1;
  c.in_chans = c.num_heads = 1;
  c.embed_dim = 4;  // the sin-cos position table needs a multiple of 4
  c.depth = std::max<int64_t>(depth, 1);
  std::vector<std::string> keys;
  for (const auto& [k, t] : models::module_weights(*models::VitEncoder(c))) keys.push_back(k);
  return keys;
}

}  // namespace

int64_t export_encoder(const std::string& checkpoint, const std::string& out) {
  engine::CheckpointPaths ck = engine::CheckpointManager::resolve(checkpoint);
  check_export_target(ck, out);
  auto w = io::load_safetensors(ck.weights);
  io::NamedTensors enc;
  for (auto& [k, t] : w.tensors)
    if (models::AimVitImpl::is_encoder_key(k)) enc.emplace_back(k, t);
  if (enc.empty()) throw InputError(ck.weights, "no encoder weights (timm keys) in this file");
  std::set<std::string> present;
  for (const auto& [k, t] : enc) {
    present.insert(k);
    if (!t.is_floating_point())
      throw InputError(ck.weights, "encoder weight '" + k + "' has dtype " + c10::toString(t.scalar_type()) +
                                       ", not a floating-point type");
    if (!at::isfinite(t).all().item<bool>())
      throw InputError(ck.weights, "encoder weight '" + k + "' holds NaN or Inf values");
  }
  for (const auto& k : required_encoder_keys(w, enc))
    if (!present.count(k)) throw InputError(ck.weights, "encoder weight '" + k + "' is missing");
  std::map<std::string, std::string> meta;
  for (const char* k : {"arch", "model"})
    if (w.metadata.count(k)) meta[k] = w.metadata.at(k);
  meta["format"] = "semaim-vit-encoder";
  meta["source"] = ck.weights;
  io::save_safetensors(out, enc, meta);
  core::log_info("exported " + std::to_string(enc.size()) + " encoder tensors (timm names) to " + out);
  return static_cast<int64_t>(enc.size());
}

}  // namespace semaim::tasks

// Config -> the engine's typed settings, with the checks a schema cannot express.
#include "semaim/engine/settings.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "semaim/core/errors.h"
#include "semaim/engine/precision.h"
#include "semaim/engine/run.h"

namespace semaim::engine {

TrainSettings TrainSettings::read(const config::Config& cfg, const std::string& section) {
  auto key = [&](const char* k) { return section + "." + k; };
  TrainSettings s;
  s.section = section;
  s.epochs = cfg.get_int(key("epochs"));
  s.max_steps = cfg.get_int(key("max_steps"));
  s.batch_size = cfg.get_int(key("batch_size"));
  s.accum_steps = cfg.get_int(key("accum_steps"));
  s.base_lr = cfg.get_float(key("base_lr"));
  s.lr = cfg.get_float(key("lr"));
  s.min_lr = cfg.get_float(key("min_lr"));
  s.warmup_epochs = cfg.get_float(key("warmup_epochs"));
  s.weight_decay = cfg.get_float(key("weight_decay"));
  const auto betas = cfg.get_floats(key("betas"));
  if (betas.size() != 2)
    throw InputError(cfg.path().empty() ? "config" : cfg.path(), key("betas") + " needs two values");
  s.beta1 = betas[0];
  s.beta2 = betas[1];
  s.eps = cfg.get_float(key("eps"));
  s.clip_grad = cfg.get_float(key("clip_grad"));
  s.precision = cfg.get_string(key("precision"));
  const PrecisionChoice choice = resolve_precision(s.precision, select_device(cfg.get_string("run.device")));
  s.bf16 = choice.bf16;
  s.precision_reason = choice.reason;
  s.ema = cfg.get_bool(key("ema"));
  s.ema_decay = cfg.get_float(key("ema_decay"));
  s.max_consecutive_skips = cfg.get_int(key("max_consecutive_skips"));
  s.checkpoint_blocks = cfg.get_int(key("checkpoint_blocks"));
  return s;
}

core::LrSchedule TrainSettings::schedule(int64_t effective_batch) const {
  core::LrSchedule s;
  s.kind = core::LrSchedule::Kind::kCosine;
  s.base_lr = peak_lr(effective_batch);
  s.min_lr = min_lr;
  s.warmup = warmup_epochs;
  s.total = static_cast<double>(epochs);
  return s;
}

CheckpointSettings CheckpointSettings::read(const config::Config& cfg) {
  CheckpointSettings s;
  s.every_epochs = cfg.get_int("checkpoint.every_epochs");
  s.every_steps = cfg.get_int("checkpoint.every_steps");
  s.keep_last = cfg.get_int("checkpoint.keep_last");
  return s;
}

LogSettings LogSettings::read(const config::Config& cfg) {
  LogSettings s;
  s.every_steps = cfg.get_int("log.every_steps");
  s.progress = cfg.get_string("log.progress");
  s.tensorboard = cfg.get_bool("log.tensorboard");
  return s;
}

namespace {

// The run directory is run.output_dir/<name>: the name must be one path component, so a run can neither write
// outside run.output_dir nor into it directly, and short enough for every filesystem's name limit with room
// for suffixes.
constexpr size_t kMaxRunNameChars = 128;

void check_run_name(const std::string& name, const config::Config& cfg) {
  const bool from_stem = cfg.get_string("run.name").empty();
  const std::string where =
      from_stem ? "run.name (empty, so the config file's stem '" + name + "')" : "run.name";
  if (name.empty()) throw InputError(where, "is empty");
  if (name == "." || name == "..") throw InputError(where, "'" + name + "' is not a directory name");
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos)
    throw InputError(where, "'" + name + "' must be a single directory name (no '/')");
  if (name.size() > kMaxRunNameChars)
    throw InputError(where, "is " + std::to_string(name.size()) + " characters long; at most " +
                                std::to_string(kMaxRunNameChars) + " are allowed");
}

}  // namespace

RunSettings RunSettings::read(const config::Config& cfg) {
  RunSettings s;
  std::string name = cfg.get_string("run.name");
  if (name.empty()) name = cfg.path().empty() ? "default" : std::filesystem::path(cfg.path()).stem().string();
  check_run_name(name, cfg);
  s.dir = (std::filesystem::path(cfg.get_string("run.output_dir")) / name).string();
  s.device = cfg.get_string("run.device");
  s.seed = static_cast<uint64_t>(cfg.get_int("run.seed"));
  s.threads = cfg.get_int("run.threads");
  if (s.threads == 0) {
    const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
    s.threads = std::max<int64_t>(1, cores - cfg.get_int("data.num_workers") / 2);
  }
  return s;
}

}  // namespace semaim::engine

// Typed settings of the engine, read once from a resolved config: the shared training keys of a task section
// (`pretrain.*`, later `finetune.*`, ...), checkpointing (`checkpoint.*`), logging (`log.*`) and the run
// (`run.*`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/core/lr_schedule.h"

namespace semaim::engine {

struct TrainSettings {
  std::string section;  // the task section the values came from
  int64_t epochs = 1, max_steps = 0, batch_size = 1, accum_steps = 1;
  double base_lr = 0, lr = 0, min_lr = 0, warmup_epochs = 0;
  double weight_decay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, clip_grad = 0;
  std::string precision = "auto";  // as configured: fp32 | bf16 | auto
  bool bf16 = false;                // resolved for run.device (engine/precision.h)
  std::string precision_reason;     // why, for the start-of-run log line
  bool ema = false;
  double ema_decay = 0.999;
  int64_t max_consecutive_skips = 10;
  int64_t checkpoint_blocks = 0;  // activation checkpointing of the first N blocks of each stack; 0 = off

  static TrainSettings read(const config::Config& cfg, const std::string& section);
  // lr as configured: the absolute `lr` when set, else base_lr x effective batch / 256.
  double peak_lr(int64_t effective_batch) const { return lr > 0 ? lr : base_lr * effective_batch / 256.0; }
  // Warmup + half-cosine in epochs (evaluated per iteration at step / steps_per_epoch).
  core::LrSchedule schedule(int64_t effective_batch) const;
};

struct CheckpointSettings {
  int64_t every_epochs = 1, every_steps = 0, keep_last = 3;
  static CheckpointSettings read(const config::Config& cfg);
};

struct LogSettings {
  int64_t every_steps = 20;
  std::string progress = "auto";  // auto | on | off
  bool tensorboard = true;
  static LogSettings read(const config::Config& cfg);
};

struct RunSettings {
  std::string dir;     // run.output_dir / (run.name or the config file's stem)
  std::string device;  // auto | cpu | cuda
  uint64_t seed = 0;
  int64_t threads = 0;  // resolved: run.threads, or cores minus half the data workers (at least 1)
  static RunSettings read(const config::Config& cfg);
};

}  // namespace semaim::engine

// The engine's configuration keys (run.*, checkpoint.*, log.*) and the training keys every task section
// shares (method.md §8: AdamW, half-cosine schedule, clipping, EMA), registered into a task's section.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "semaim/config/config.h"

namespace semaim::engine {

// Sections run, checkpoint and log.
void register_config_keys(config::Schema& schema);

// A task's defaults for the shared training keys; the initial values are SemAIM pretraining's.
struct TrainingKeyDefaults {
  int64_t epochs = 10;
  int64_t batch_size = 256;
  double base_lr = 2e-4;
  double min_lr = 0.0;
  double warmup_epochs = 1.0;
  double weight_decay = 0.05;
  std::vector<double> betas = {0.9, 0.95};
  double eps = 1e-8;
  double clip_grad = 3.0;
  bool ema = false;
  double ema_decay = 0.999;
  std::string precision = "auto";  // fp32 | bf16 | auto
};

// Registers into the task's declared `section` (which may hold task-specific keys too): epochs, max_steps,
// batch_size, accum_steps, base_lr, lr, min_lr, warmup_epochs, weight_decay, betas, eps, clip_grad, precision,
// ema, ema_decay, max_consecutive_skips and checkpoint_blocks, with the task's `defaults`.
void register_training_keys(config::Schema& schema, const std::string& section,
                            const TrainingKeyDefaults& defaults);

}  // namespace semaim::engine

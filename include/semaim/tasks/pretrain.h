// The SemAIM pretraining task (MAE's main_pretrain + engine_pretrain): per micro-batch a no-grad encoder pass
// gives the ordering (docs/method.md §6), the two-stream model predicts every patch in that order (§3-4, §7);
// the shared engine does the rest (optimizer, schedule, accumulation, skips, EMA, checkpoints, metrics).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>

#include "semaim/config/config.h"

namespace semaim::tasks {

struct PretrainOptions {
  // "" = start fresh (fails if the run directory already holds checkpoints), "auto" = resume from the run's
  // newest complete checkpoint if there is one, else a checkpoint path or directory.
  std::string resume;
  bool quiet = false;
  // Test hook: maps each micro-batch loss before backward (e.g. to inject a non-finite value). Empty in
  // production.
  std::function<at::Tensor(const at::Tensor& loss, int64_t step)> loss_hook;
};

struct PretrainResult {
  std::string run_dir;
  std::string last_checkpoint;  // manifest path
  int64_t steps = 0;            // optimizer steps completed (in total, across resumes)
  int64_t skipped_steps = 0;
  int64_t bad_images = 0;  // samples replaced because their file did not decode (completed epochs, all ranks)
  double first_loss = 0, last_loss = 0;  // mean loss of the first and last logging windows of this process
  double images_per_sec = 0;             // over this process's training time
  double seconds = 0;
};

PretrainResult pretrain(const config::Config& cfg, const PretrainOptions& opts);

}  // namespace semaim::tasks

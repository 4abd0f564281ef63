// The training fields every supervised task's result carries (FinetuneResult, SegmentResult); the trainer
// fills them (engine::finish_trained_run in trainer.h).
#pragma once
#include <cstdint>
#include <string>

namespace semaim::engine {

struct TrainedRun {
  std::string run_dir, last_checkpoint, best_checkpoint;  // manifests
  int64_t steps = 0, skipped_steps = 0;
  double first_loss = 0, last_loss = 0, images_per_sec = 0, seconds = 0;
};

}  // namespace semaim::engine

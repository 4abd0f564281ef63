// The training loop every task shares (MAE's main_* epoch loop around engine_*.train_one_epoch): epochs over
// a data::Loader from the resumed position, one optimizer step at a time through the task's step function,
// the lr schedule per iteration, skip accounting and divergence stop, logging windows to the metric sinks,
// evaluation hooks, and checkpoints every N steps / epochs and at the end.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "semaim/core/lr_schedule.h"
#include "semaim/core/timing.h"
#include "semaim/data/loader.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/engine/run.h"
#include "semaim/engine/settings.h"
#include "semaim/engine/sinks.h"
#include "semaim/engine/step.h"
#include "semaim/engine/train_state.h"
#include "semaim/engine/trained_run.h"

namespace semaim::engine {

// An evaluation run every `every_steps` optimizer steps and/or every `every_epochs` epochs (0 = never) and at
// the end of training; it returns metrics (e.g. {"top1": 81.2}) that go to the sinks and into the checkpoint
// saved right after it (in place of a regular one at that step), so the checkpointer can keep the best.
struct EvalHook {
  int64_t every_steps = 0, every_epochs = 0;
  std::function<nlohmann::json(int64_t step)> run;
};

struct LoopSettings {
  int64_t total_steps = 0;      // this run stops here (max_steps or the schedule's end)
  int64_t images_per_step = 0;  // effective batch: batch x accum x ranks
  int64_t max_consecutive_skips = 10;
  core::LrSchedule schedule;  // evaluated at step / steps_per_epoch (epoch units)
  CheckpointSettings checkpoint;
  LogSettings log;
};

// The loop of a task section's training settings: total steps (max_steps or the schedule's end), images per
// step, the warmup + half-cosine schedule at the effective batch's lr.
LoopSettings loop_settings(const TrainSettings& train, const CheckpointSettings& checkpoint,
                           const LogSettings& log, int64_t steps_per_epoch, int64_t effective_batch);

// Optimizer steps per epoch of `loader` (its micro-batches / train.accum_steps); an InputError naming the
// config when the dataset is smaller than one optimizer step of `effective_batch` images.
int64_t steps_per_epoch(const data::Loader& loader, const TrainSettings& train, int64_t effective_batch,
                        const config::Config& cfg);

struct TrainSummary {
  int64_t steps = 0, skipped_steps = 0;
  int64_t bad_images = 0;                // samples replaced because their file did not decode (all ranks)
  double first_loss = 0, last_loss = 0;  // mean loss of the first and last logging windows of this process
  double images_per_sec = 0, seconds = 0;
  std::string last_checkpoint;  // manifest path
};

// The training fields of a task's run summary: run_dir, steps, skipped_steps, first_loss, last_loss,
// images_per_sec, seconds and checkpoint (the last manifest); a task adds its own.
nlohmann::json summary_json(const std::string& run_dir, const TrainSummary& s);

// Fills `out` from the trainer's summary and the checkpoint `manager` keeps best; returns that checkpoint's
// `metric` (from its manifest), or `current` when no checkpoint is marked best.
double finish_trained_run(TrainedRun& out, const std::string& run_dir, const TrainSummary& sum,
                          const CheckpointManager& manager, const std::string& metric, double current);

// Writes `summary` to <run dir>/<task>_summary.json on rank 0 (atomically).
void write_summary(const RunContext& ctx, const std::string& task, const nlohmann::json& summary);

class Trainer {
 public:
  Trainer(RunContext& ctx, TrainState& state, Checkpointer& ckpt, Sinks& sinks, ConsoleSink& console,
          LoopSettings settings);
  void add_eval(EvalHook hook) { evals_.push_back(std::move(hook)); }
  // Runs until settings.total_steps. step_fn performs one optimizer step at the given lr on the loader's next
  // accum_steps micro-batches (its StepRunner does the update) and reports it. A stop signal (StopSignals)
  // on any rank ends the run after the step in progress: a checkpoint of that step, then semaim::Preempted.
  TrainSummary run(data::Loader& loader, const std::function<StepResult(data::Loader&, double lr)>& step_fn);

 private:
  struct Window;
  void after_step(const StepResult& r, Window& w, data::Loader& loader);
  void log_window(Window& w, data::Loader& loader);
  void end_epoch(data::Loader& loader);
  // Runs every hook; their merged metrics, also recorded to the sinks.
  nlohmann::json run_evals();
  void save(const std::string& reason, const nlohmann::json& metrics = nlohmann::json::object());
  void on_skip();
  // Saves and throws Preempted when any rank received a stop signal.
  void stop_if_signalled();

  RunContext& ctx_;
  TrainState& state_;
  Checkpointer& ckpt_;
  Sinks& sinks_;
  ConsoleSink& console_;
  LoopSettings cfg_;
  std::vector<EvalHook> evals_;
  TrainSummary summary_;
  int64_t consecutive_skips_ = 0, start_step_ = 0, images_done_ = 0, last_saved_step_ = -1;
  bool have_first_ = false;
  core::Clock::time_point t_train_;
};

}  // namespace semaim::engine

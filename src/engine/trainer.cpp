// The shared training loop: epochs, steps, skips, logging windows, evaluations, checkpoints.
#include "semaim/engine/trainer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/engine/stop_signals.h"
#include "semaim/io/atomic_file.h"

namespace semaim::engine {

// Accumulators of one logging window.
struct Trainer::Window {
  core::Clock::time_point start = core::Clock::now();
  double wait_start = 0, loss = 0, grad = 0;
  int64_t steps = 0;
};

LoopSettings loop_settings(const TrainSettings& train, const CheckpointSettings& checkpoint,
                           const LogSettings& log, int64_t steps_per_epoch, int64_t effective_batch) {
  const int64_t schedule_steps = steps_per_epoch * train.epochs;
  LoopSettings l;
  l.total_steps = train.max_steps > 0 ? std::min(train.max_steps, schedule_steps) : schedule_steps;
  l.images_per_step = effective_batch;
  l.max_consecutive_skips = train.max_consecutive_skips;
  l.schedule = train.schedule(effective_batch);
  l.checkpoint = checkpoint;
  l.log = log;
  return l;
}

int64_t steps_per_epoch(const data::Loader& loader, const TrainSettings& train, int64_t effective_batch,
                        const config::Config& cfg) {
  const int64_t steps = loader.steps_per_epoch() / train.accum_steps;
  if (steps < 1)
    throw InputError(cfg.path().empty() ? "config" : cfg.path(),
                     "the dataset (" + std::to_string(loader.size()) +
                         " images) is smaller than one optimizer step of " + std::to_string(effective_batch) +
                         " images (" + train.section + ".batch_size x " + train.section +
                         ".accum_steps x ranks)");
  return steps;
}

nlohmann::json summary_json(const std::string& run_dir, const TrainSummary& s) {
  return {{"run_dir", run_dir},
          {"steps", s.steps},
          {"skipped_steps", s.skipped_steps},
          {"first_loss", s.first_loss},
          {"last_loss", s.last_loss},
          {"images_per_sec", s.images_per_sec},
          {"seconds", s.seconds},
          {"checkpoint", s.last_checkpoint}};
}

double finish_trained_run(TrainedRun& out, const std::string& run_dir, const TrainSummary& sum,
                          const CheckpointManager& manager, const std::string& metric, double current) {
  out.run_dir = run_dir;
  out.last_checkpoint = sum.last_checkpoint;
  out.steps = sum.steps, out.skipped_steps = sum.skipped_steps;
  out.first_loss = sum.first_loss, out.last_loss = sum.last_loss;
  out.images_per_sec = sum.images_per_sec, out.seconds = sum.seconds;
  const auto best = manager.best();
  if (!best) return current;
  out.best_checkpoint = best->manifest;
  return read_manifest(best->manifest)["metrics"][metric].get<double>();
}

void write_summary(const RunContext& ctx, const std::string& task, const nlohmann::json& summary) {
  if (ctx.rank0())
    io::atomic_write((std::filesystem::path(ctx.run.dir) / (task + "_summary.json")).string(),
                     summary.dump(2) + "\n");
}

Trainer::Trainer(RunContext& ctx, TrainState& state, Checkpointer& ckpt, Sinks& sinks, ConsoleSink& console,
                 LoopSettings settings)
    : ctx_(ctx), state_(state), ckpt_(ckpt), sinks_(sinks), console_(console), cfg_(std::move(settings)) {}

TrainSummary Trainer::run(data::Loader& loader,
                          const std::function<StepResult(data::Loader&, double)>& step_fn) {
  const StopSignals signals;  // a stop signal ends the run after the step in progress, with a checkpoint
  const auto t_start = core::Clock::now();
  t_train_ = core::Clock::now();
  start_step_ = state_.step;
  const int64_t spe = state_.steps_per_epoch;
  while (state_.step < cfg_.total_steps) {
    const int64_t epoch = state_.epoch();
    loader.start_epoch(epoch, state_.batch_in_epoch());
    Window w;
    while (state_.step < cfg_.total_steps && state_.step / spe == epoch) {
      stop_if_signalled();
      ctx_.faults.check(ctx_.rank(), state_.step);
      const double lr = core::lr_at(cfg_.schedule, static_cast<double>(state_.step) / spe);
      const StepResult r = step_fn(loader, lr);
      if (!r.applied) {
        on_skip();
        continue;
      }
      after_step(r, w, loader);
    }
    if (state_.step % spe == 0) end_epoch(loader);
  }
  save("end", run_evals());
  console_.finish();
  summary_.steps = state_.step;
  summary_.skipped_steps = state_.skipped_total;
  summary_.seconds = core::seconds_since(t_start);
  summary_.images_per_sec = images_done_ / std::max(core::seconds_since(t_train_), 1e-9);
  return summary_;
}

void Trainer::stop_if_signalled() {
  const int signal = StopSignals::pending();
  // One scalar per step agrees on the stop, so every rank saves the same step even when the signal reached
  // the ranks at different times (or only some of them).
  const bool stop = ctx_.world() > 1 ? ctx_.sum_over_ranks(signal != 0 ? 1.0 : 0.0) > 0 : signal != 0;
  if (!stop) return;
  save("preempted");
  console_.finish();
  const std::string by = signal != 0 ? signal_name(signal) : "a stop signal on another rank";
  const std::string saved =
      ctx_.rank0() ? "checkpoint " + summary_.last_checkpoint : "rank 0 saved its checkpoint";
  throw Preempted(signal, "stopped by " + by + " at step " + std::to_string(state_.step) + ": " + saved +
                              "; continue with --resume auto");
}

void Trainer::on_skip() {
  ++state_.skipped_total;
  ++consecutive_skips_;
  console_.line("step " + std::to_string(state_.step) + ": non-finite loss or gradient, step skipped (" +
                std::to_string(consecutive_skips_) + " in a row)");
  if (consecutive_skips_ >= cfg_.max_consecutive_skips) {
    save("diverged");
    console_.finish();
    throw RuntimeFailure("training diverged: " + std::to_string(consecutive_skips_) +
                         " consecutive non-finite steps at step " + std::to_string(state_.step) +
                         "; checkpoint saved at " + summary_.last_checkpoint +
                         " (lower the learning rate or lengthen the warmup, then --resume)");
  }
  ++state_.step;  // the step consumed its data; the schedule and the data position move on without an update
}

void Trainer::after_step(const StepResult& r, Window& w, data::Loader& loader) {
  consecutive_skips_ = 0;
  ++state_.step;
  images_done_ += cfg_.images_per_step;
  w.loss += r.loss;
  w.grad += r.grad_norm;
  ++w.steps;
  const int64_t step = state_.step;
  if (console_.bar()) {
    const double elapsed = core::seconds_since(t_train_);
    const double eta = elapsed / std::max<int64_t>(1, step - start_step_) * (cfg_.total_steps - step);
    char s[160];
    std::snprintf(s, sizeof(s), "ep %lld step %lld/%lld loss %.4f %.1f img/s ETA %s",
                  (long long)state_.epoch(), (long long)step, (long long)cfg_.total_steps, r.loss,
                  images_done_ / std::max(elapsed, 1e-9), core::format_duration(eta).c_str());
    console_.progress(step, s);
  }
  if (step % cfg_.log.every_steps == 0 || step == cfg_.total_steps) log_window(w, loader);
  if (step >= cfg_.total_steps) return;
  bool eval_due = false;
  for (const auto& e : evals_) eval_due |= e.every_steps > 0 && step % e.every_steps == 0;
  const int64_t every = cfg_.checkpoint.every_steps;
  if (eval_due)
    save("eval", run_evals());  // a checkpoint after every evaluation, so the best one can be kept
  else if (every > 0 && step % every == 0)
    save("every_steps");
}

void Trainer::log_window(Window& w, data::Loader& loader) {
  const int64_t step = state_.step;
  const double dt = core::seconds_since(w.start);
  const double wait = loader.wait_seconds() - w.wait_start;
  w.wait_start = loader.wait_seconds();
  const double elapsed = core::seconds_since(t_train_);
  const double eta = elapsed / std::max<int64_t>(1, step - start_step_) * (cfg_.total_steps - step);
  const double mean_loss = ctx_.mean_over_ranks(w.loss) / w.steps;  // the logged loss is the mean over ranks
  if (!have_first_) summary_.first_loss = mean_loss, have_first_ = true;
  summary_.last_loss = mean_loss;
  nlohmann::json rec{{"epoch", (step - 1) / state_.steps_per_epoch},
                     {"step", step},
                     {"loss", mean_loss},
                     {"lr", state_.optimizer->lr()},
                     {"grad_norm", w.grad / w.steps},
                     {"images_per_sec", w.steps * cfg_.images_per_step / std::max(dt, 1e-9)},
                     {"data_wait_share", std::min(1.0, wait / std::max(dt, 1e-9))},
                     {"skipped_total", state_.skipped_total},
                     {"eta_sec", eta},
                     {"time", elapsed}};
  sinks_.record(rec);
  console_.record(rec);
  w.loss = w.grad = 0;
  w.steps = 0;
  w.start = core::Clock::now();
}

void Trainer::end_epoch(data::Loader& loader) {
  const int64_t epoch = state_.step / state_.steps_per_epoch - 1;
  // Bad files replaced this epoch, summed over ranks.
  const auto n_bad = static_cast<int64_t>(ctx_.sum_over_ranks(static_cast<double>(loader.bad_images())));
  summary_.bad_images += n_bad;
  core::log_info("epoch " + std::to_string(epoch) + " done: " + std::to_string(n_bad) +
                 " bad image(s) skipped" +
                 (n_bad ? " (replaced by the next readable image; see warnings)" : ""));
  if (state_.step >= cfg_.total_steps) return;
  const int64_t done = state_.step / state_.steps_per_epoch;
  bool eval_due = false;
  for (const auto& e : evals_) eval_due |= e.every_epochs > 0 && done % e.every_epochs == 0;
  const int64_t every = cfg_.checkpoint.every_epochs;
  if (eval_due)
    save("eval", run_evals());
  else if (every > 0 && done % every == 0)
    save("epoch");
}

nlohmann::json Trainer::run_evals() {
  nlohmann::json metrics = nlohmann::json::object();
  if (evals_.empty()) return metrics;
  for (const auto& e : evals_) {
    const nlohmann::json m = e.run(state_.step);
    for (const auto& [k, v] : m.items()) metrics[k] = v;
  }
  nlohmann::json rec = metrics;
  rec["step"] = state_.step;
  rec["epoch"] = (state_.step - 1) / state_.steps_per_epoch;
  sinks_.record(rec);
  console_.line("evaluation at step " + std::to_string(state_.step) + ": " + metrics.dump());
  return metrics;
}

void Trainer::save(const std::string& reason, const nlohmann::json& metrics) {
  if (state_.step == last_saved_step_ && reason != "end" && reason != "diverged") return;  // already on disk
  last_saved_step_ = state_.step;
  CheckpointPaths p = ckpt_.save(state_, reason, ctx_.rank0(), metrics);
  if (ctx_.rank0()) summary_.last_checkpoint = p.manifest;
  ctx_.barrier();  // no rank runs ahead of a checkpoint that is not on disk yet
}

}  // namespace semaim::engine

// Fuzz target: what `--resume` reads from a run directory: the manifest step-N.json
// (CheckpointManager::resolve; the newest intact checkpoint for `--resume auto`), Checkpointer::restore of
// the weights file (config drift check, load_weights) and the state file (info metadata, optimizer slots,
// EMA, RNG) into the tiny pretraining model of fuzz/checkpoint_run.yaml, then open_run_sinks over the run's
// metrics.jsonl (kept up to the resumed step) and config.yaml (compared with the resumed config). The first
// byte chooses the file the rest of the input replaces (0 manifest, 1 weights, 2 state, 3 metrics.jsonl,
// 4 config.yaml); the others are those of a valid run of the model.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "semaim/config/config.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/engine/optimizer.h"
#include "semaim/engine/run.h"
#include "semaim/engine/settings.h"
#include "semaim/engine/sinks.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"
#include "semaim_paths.h"

namespace {

using namespace semaim;

constexpr int kFiles = 5;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

config::Config run_config() {
  config::Config cfg = config::Config::load(tasks::schema(), SEMAIM_SOURCE_DIR "/fuzz/checkpoint_run.yaml");
  cfg.apply_overrides({"run.output_dir=" + fuzz::temp_dir().path().string(), "run.name=run"});
  return cfg;
}

// The pretraining model, its EMA copy and AdamW as `semaim pretrain` wires them, the run context and a
// checkpointer of its run directory, and the files of a valid run of them.
struct Run {
  config::Config cfg = run_config();
  engine::RunContext ctx = engine::RunContext::open(cfg, /*quiet=*/true);
  models::AimVit model{nullptr}, ema{nullptr};
  std::unique_ptr<engine::AdamW> optimizer;
  engine::TrainState state;
  std::unique_ptr<engine::Checkpointer> checkpointer;
  std::string checkpoints;
  std::vector<std::string> paths, valid;  // manifest, weights, state, metrics.jsonl, config.yaml

  Run() {
    const engine::TrainSettings train = engine::TrainSettings::read(cfg, "pretrain");
    model = tasks::build_aim(cfg);
    ema = models::AimVit(tasks::aim_config(cfg));
    engine::GroupRule rule;
    rule.weight_decay = train.weight_decay;
    optimizer = std::make_unique<engine::AdamW>(engine::make_param_groups(tasks::trainable(*model), rule),
                                                engine::AdamWOptions{train.beta1, train.beta2, train.eps});
    state.model = model.get();
    state.optimizer = optimizer.get();
    state.ema = ema.get();
    state.step = 1;
    checkpoints = (std::filesystem::path(ctx.run.dir) / "checkpoints").string();
    checkpointer =
        std::make_unique<engine::Checkpointer>(engine::CheckpointManager(checkpoints, 1),
                                               std::map<std::string, std::string>{{"config", cfg.to_yaml()}});
    const engine::CheckpointPaths saved = checkpointer->save(state, "fuzz", /*rank0=*/true);
    paths = {saved.manifest, saved.weights, saved.state, ctx.run.dir + "/metrics.jsonl",
             ctx.run.dir + "/config.yaml"};
    for (int i = 0; i < 3; ++i) valid.push_back(read_all(paths[i]));
    valid.push_back("{\"step\": 1, \"loss\": 1.0}\n");
    valid.push_back(cfg.to_yaml());
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static Run run;
  const int which = data[0] % kFiles;
  for (int i = 0; i < kFiles; ++i) {
    if (i == which)
      fuzz::write_file(run.paths[i], data + 1, size - 1);
    else
      fuzz::write_file(run.paths[i], run.valid[i]);
  }
  // `--resume <manifest>`, then `--resume auto` (resolve's directory form is latest_intact too).
  fuzz::expect_input_error([&] {
    const engine::CheckpointPaths from = engine::CheckpointManager::resolve(run.paths[0]);
    run.checkpointer->restore(run.state, from);
  });
  fuzz::expect_input_error([&] {
    if (auto from = run.checkpointer->resume_from("auto", run.ctx.run.dir))
      run.checkpointer->restore(run.state, *from);
  });
  fuzz::expect_input_error([&] {
    engine::open_run_sinks(run.ctx, run.cfg, engine::LogSettings::read(run.cfg), "pretrain", /*step=*/1);
  });
  return 0;
}

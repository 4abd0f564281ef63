// The pretraining task on real Fashion-MNIST images with a tiny model: resume is bitwise exact, non-finite
// losses are skipped and stop the run with a checkpoint, a stop signal saves the step and the resumed run is
// bitwise the same, a changed config is refused on resume, and a run leaves its config, metrics, TensorBoard
// events and summary behind.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "run_command.h"
#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/io/safetensors.h"
#include "semaim/tasks/pretrain.h"
#include "semaim/tasks/schema.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::config::Config;
using namespace semaim::tasks;
using semaim::engine::CheckpointManager;
using semaim::engine::read_manifest;
using semaim::test::TempDir;

namespace {

Config tiny_config(const fs::path& out, const std::string& name, const std::string& strategy = "semantic") {
  Config c = Config::defaults(schema());
  c.apply_overrides({"run.output_dir=" + out.string(), "run.name=" + name, "run.threads=1",
                     "model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.decoder_depth=2",
                     "data.limit=256", "data.num_workers=1", "pretrain.batch_size=32",
                     "pretrain.accum_steps=2", "pretrain.epochs=2", "pretrain.warmup_epochs=0.5",
                     "pretrain.base_lr=0.01", "log.every_steps=1", "log.progress=off",
                     "checkpoint.every_epochs=0", "ordering.strategy=" + strategy});
  return c;
}

semaim::io::NamedTensors final_weights(const PretrainResult& r) {
  return semaim::io::load_safetensors(CheckpointManager::resolve(r.last_checkpoint).weights).tensors;
}

// tiny_config stopping after `max_steps` optimizer steps.
Config tiny_run(const fs::path& out, const std::string& name, int64_t max_steps) {
  Config c = tiny_config(out, name);
  c.apply_overrides({"pretrain.max_steps=" + std::to_string(max_steps)});
  return c;
}

PretrainOptions quiet(const std::string& resume = "") {
  PretrainOptions o;
  o.quiet = true;
  o.resume = resume;
  return o;
}

// The two runs' final weights are equal bit for bit, name by name.
void expect_same_weights(const PretrainResult& a, const PretrainResult& b) {
  const auto wa = final_weights(a), wb = final_weights(b);
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wa[i].first, wb[i].first);
    EXPECT_TRUE(torch::equal(wa[i].second, wb[i].second)) << wa[i].first;
  }
}

}  // namespace

TEST(Pretrain, ResumeIsBitwiseEqualToAnUninterruptedRun) {
  TempDir tmp;
  const auto a = pretrain(tiny_run(tmp.path(), "straight", 6), quiet());
  ASSERT_EQ(pretrain(tiny_run(tmp.path(), "split", 3), quiet()).steps, 3);
  const auto b = pretrain(tiny_run(tmp.path(), "split", 6), quiet("auto"));
  ASSERT_EQ(a.steps, 6);
  ASSERT_EQ(b.steps, 6);
  expect_same_weights(a, b);
}

TEST(Pretrain, AResumeDropsMetricsRecordsWithoutAnIntegerStep) {
  TempDir tmp;
  ASSERT_EQ(pretrain(tiny_run(tmp.path(), "r", 3), quiet()).steps, 3);
  {
    std::ofstream m(tmp.path() / "r" / "metrics.jsonl", std::ios::app);
    m << "{\"step\":\"x\",\"loss\":1}\n{\"loss\":2}\n";
  }
  ASSERT_EQ(pretrain(tiny_run(tmp.path(), "r", 5), quiet("auto")).steps, 5);
  std::ifstream m(tmp.path() / "r" / "metrics.jsonl");
  std::vector<int64_t> steps;
  for (std::string line; std::getline(m, line);) steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5}));
}

TEST(Pretrain, RunDirectoryHoldsResolvedConfigMetricsAndSummaryAndLossFalls) {
  TempDir tmp;
  const fs::path d = tmp.path();
  Config c = tiny_config(d, "r");
  c.apply_overrides({"pretrain.epochs=3"});
  const auto r = pretrain(c, quiet());
  EXPECT_TRUE(fs::exists(d / "r" / "config.yaml"));
  EXPECT_TRUE(fs::exists(d / "r" / "pretrain_summary.json"));
  std::ifstream m(d / "r" / "metrics.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(m, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* k :
         {"epoch", "step", "loss", "lr", "grad_norm", "images_per_sec", "data_wait_share", "eta_sec"})
      EXPECT_TRUE(j.contains(k)) << k;
    ++n;
  }
  EXPECT_EQ(n, r.steps);
  EXPECT_LT(r.last_loss, r.first_loss);
  // Resolved config reloads and equals the run's config.
  EXPECT_EQ(Config::load(schema(), (d / "r" / "config.yaml").string()).to_yaml(), c.to_yaml());
}

TEST(Pretrain, NonFiniteLossesAreSkippedCountedAndStopTheRunWithACheckpoint) {
  TempDir tmp;
  const fs::path d = tmp.path();
  Config c = tiny_config(d, "n");
  c.apply_overrides({"pretrain.max_consecutive_skips=3"});
  PretrainOptions o = quiet();
  o.loss_hook = [](const at::Tensor& loss, int64_t step) {
    return step == 1 || step >= 3 ? loss * std::numeric_limits<float>::quiet_NaN() : loss;
  };
  try {
    pretrain(c, o);
    FAIL() << "expected a RuntimeFailure";
  } catch (const semaim::RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("3 consecutive"), std::string::npos) << e.what();
  }
  CheckpointManager m((d / "n" / "checkpoints").string(), 10);
  ASSERT_TRUE(m.latest().has_value());
  auto info = read_manifest(m.latest()->manifest);
  EXPECT_EQ(info["reason"], "diverged");
  EXPECT_EQ(info["skipped_total"], 4);  // step 1, then 3, 4, 5
}

TEST(Pretrain, FreshStartRefusesARunDirectoryWithCheckpoints) {
  TempDir tmp;
  const fs::path d = tmp.path();
  Config c = tiny_config(d, "x", "raster");
  c.apply_overrides({"pretrain.max_steps=1"});
  PretrainOptions o = quiet();
  pretrain(c, o);
  EXPECT_THROW(pretrain(c, o), semaim::InputError);
}

TEST(Pretrain, EveryOrderingStrategyTrains) {
  TempDir tmp;
  const fs::path d = tmp.path();
  for (const char* s : {"raster", "snake", "stochastic", "center_out", "stochastic_center", "similarity",
                        "semantic", "parts"}) {
    Config c = tiny_config(d, s, s);
    c.apply_overrides({"pretrain.max_steps=2"});
    PretrainOptions o = quiet();
    auto r = pretrain(c, o);
    EXPECT_EQ(r.steps, 2) << s;
    EXPECT_TRUE(std::isfinite(r.last_loss)) << s;
  }
}

TEST(Pretrain, Bf16AndEmaSourceRun) {
  TempDir tmp;
  const fs::path d = tmp.path();
  Config c = tiny_config(d, "b");
  c.apply_overrides(
      {"pretrain.max_steps=2", "pretrain.precision=bf16", "pretrain.ema=true", "ordering.source_model=ema"});
  PretrainOptions o = quiet();
  auto r = pretrain(c, o);
  EXPECT_EQ(r.steps, 2);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  auto st = semaim::io::load_safetensors(CheckpointManager::resolve(r.last_checkpoint).state);
  bool has_ema = false;
  for (auto& [k, t] : st.tensors) has_ema |= k.rfind("ema.", 0) == 0;
  EXPECT_TRUE(has_ema);
}

TEST(Pretrain, TensorBoardEventsHoldEveryScalarOfMetricsJsonl) {
  if (!fs::exists(SEMAIM_PYTHON)) GTEST_SKIP() << "python binary " << SEMAIM_PYTHON << " does not exist";
  TempDir tmp;
  const fs::path d = tmp.path();
  Config c = tiny_config(d, "tb");
  c.apply_overrides({"pretrain.max_steps=4", "log.every_steps=2"});
  PretrainOptions o = quiet();
  pretrain(c, o);
  const auto r = semaim::testing::run_command(std::string("'") + SEMAIM_PYTHON + "' '" + SEMAIM_SOURCE_DIR +
                                              "/tests/io/read_tb_events.py' '" + (d / "tb").string() + "'");
  if (r.exit_code == 77) GTEST_SKIP() << "the venv has no tensorboard package (tools/setup.sh installs it)";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto events = nlohmann::json::parse(r.output);
  std::ifstream m(d / "tb" / "metrics.jsonl");
  std::string line;
  int records = 0, compared = 0;
  while (std::getline(m, line)) {
    const auto rec = nlohmann::json::parse(line);
    ++records;
    for (const auto& [key, value] : rec.items()) {
      if (key == "step" || !value.is_number()) continue;
      const auto& points = events["scalars"].at("pretrain/" + key);
      bool found = false;
      for (const auto& p : points)
        if (p["step"] == rec["step"]) {
          EXPECT_EQ(p["value"].get<float>(), static_cast<float>(value.get<double>()))
              << key << " " << rec["step"];
          found = true;
        }
      EXPECT_TRUE(found) << key << " at step " << rec["step"];
      ++compared;
    }
  }
  EXPECT_EQ(records, 2);
  EXPECT_GE(compared, 2 * 9);
  ASSERT_TRUE(events["texts"].contains("config"));
  EXPECT_NE(events["texts"]["config"][0]["text"].get<std::string>().find("ordering:"), std::string::npos);
}

TEST(Pretrain, AStopSignalSavesTheStepInProgressAndTheResumedRunIsBitwiseEqualToAnUninterruptedOne) {
  TempDir tmp;
  const fs::path d = tmp.path();
  const auto a = pretrain(tiny_run(d, "straight", 6), quiet());
  const Config split = tiny_run(d, "split", 6);
  PretrainOptions signalled = quiet();
  auto raised = std::make_shared<bool>(false);
  signalled.loss_hook = [raised](const at::Tensor& loss, int64_t step) {
    if (step == 2 && !*raised) std::raise(SIGUSR1);  // once (a second signal would exit), while step 2 runs
    *raised |= step == 2;
    return loss;
  };
  EXPECT_THROW(pretrain(split, signalled), semaim::Preempted);
  CheckpointManager m((d / "split" / "checkpoints").string(), 10);
  ASSERT_TRUE(m.latest().has_value());
  EXPECT_EQ(m.latest()->step, 3);
  EXPECT_EQ(read_manifest(m.latest()->manifest)["reason"], "preempted");
  const auto b = pretrain(split, quiet("auto"));
  ASSERT_EQ(b.steps, 6);
  expect_same_weights(a, b);
}

TEST(Pretrain, AResumeWithAChangedSeedIsRefusedUnlessAllowedAndKeepsTheRunsConfig) {
  TempDir tmp;
  const fs::path d = tmp.path();
  PretrainOptions o = quiet();
  Config c = tiny_config(d, "s", "raster");
  c.apply_overrides({"pretrain.max_steps=1"});
  pretrain(c, o);
  const std::string before = Config::load(schema(), (d / "s" / "config.yaml").string()).to_yaml();
  Config changed = tiny_config(d, "s", "raster");
  changed.apply_overrides({"pretrain.max_steps=2", "run.seed=7"});
  o.resume = "auto";
  try {
    pretrain(changed, o);
    FAIL() << "expected an InputError";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("run.seed: 0 -> 7"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Config::load(schema(), (d / "s" / "config.yaml").string()).to_yaml(), before);
  changed.apply_overrides({"run.allow_config_change=true"});
  EXPECT_EQ(pretrain(changed, o).steps, 2);
  EXPECT_EQ(Config::load(schema(), (d / "s" / "config.yaml").string()).get_int("run.seed"), 7);
}

// What keeps a run intact on a cluster: stop signals, the run directory's lock, refused config drift on
// resume, cleanup of interrupted saves, fallback from a broken newest checkpoint, and loading checks (dtype,
// finiteness, malformed manifests and state files) that name the file and the field.
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "semaim/core/errors.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/engine/config_drift.h"
#include "semaim/engine/run.h"
#include "semaim/engine/run_lock.h"
#include "semaim/engine/stop_signals.h"
#include "semaim/models/weights.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace semaim;
using semaim::test::TempDir;

namespace {

io::NamedTensors one(float v) { return {{"w", torch::full({2}, v)}}; }

// The message of the InputError `f` throws ("" and a test failure when it throws none).
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected semaim::InputError";
  return "";
}

// A linear model with an SGD optimizer, saved and restored through a Checkpointer.
struct Tiny {
  torch::nn::Linear model{2, 2};
  std::unique_ptr<engine::Sgd> opt;
  engine::TrainState state;
  std::unique_ptr<engine::Checkpointer> ckpt;

  Tiny(const std::string& dir, const std::string& config_yaml) {
    opt = std::make_unique<engine::Sgd>(
        engine::make_param_groups({{"weight", model->weight}, {"bias", model->bias}}, engine::GroupRule{}),
        engine::SgdOptions{0.9});
    state.model = model.get();
    state.optimizer = opt.get();
    state.steps_per_epoch = 4;
    std::map<std::string, std::string> meta;
    if (!config_yaml.empty()) meta["config"] = config_yaml;
    ckpt = std::make_unique<engine::Checkpointer>(engine::CheckpointManager(dir, 5), meta);
  }
};

const char* kConfig =
    "run:\n  seed: 0\n  threads: 1\npretrain:\n  base_lr: 0.00015\n  max_steps: 3\n"
    "  betas: [0.9, 0.95]\nordering:\n  strategy: semantic\n";

}  // namespace

TEST(StopSignals, TheFirstSignalIsRecordedWhileAnInstanceLives) {
  struct sigaction before = {};
  ::sigaction(SIGUSR1, nullptr, &before);
  {
    engine::StopSignals signals;
    EXPECT_EQ(engine::StopSignals::pending(), 0);
    std::raise(SIGUSR1);
    EXPECT_EQ(engine::StopSignals::pending(), SIGUSR1);
    EXPECT_STREQ(engine::signal_name(engine::StopSignals::pending()), "SIGUSR1");
  }
  EXPECT_EQ(engine::StopSignals::pending(), 0);
  struct sigaction after = {};
  ::sigaction(SIGUSR1, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);  // the previous handler is back
}

TEST(StopSignals, ASecondSignalExitsAtOnceWith128PlusTheSignal) {
  EXPECT_EXIT(
      {
        engine::StopSignals signals;
        std::raise(SIGTERM);
        std::raise(SIGINT);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(128 + SIGINT), "second stop signal");
}

TEST(RunLock, ASecondHolderFailsNamingTheDirectoryAndThePidUntilTheFirstIsReleased) {
  TempDir tmp;
  const std::string dir = tmp.path().string();
  auto first = std::make_unique<engine::RunLock>(dir);
  const std::string msg = input_error([&] { engine::RunLock second(dir); });
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
  EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;
  first.reset();
  EXPECT_NO_THROW({ engine::RunLock again(dir); });
}

TEST(RunLock, TheHolderRemovesTempFilesOfKilledMetricsAndConfigWrites) {
  TempDir tmp;
  const fs::path dir = tmp.path();
  for (const char* name : {"metrics.jsonl.tmp.9838.0.9119518", "config.yaml.tmp.12.3.77", "metrics.jsonl",
                           "notes.tmp.txt"})
    std::ofstream(dir / name) << "x";
  engine::RunLock lock(dir.string());
  EXPECT_FALSE(fs::exists(dir / "metrics.jsonl.tmp.9838.0.9119518"));
  EXPECT_FALSE(fs::exists(dir / "config.yaml.tmp.12.3.77"));
  EXPECT_TRUE(fs::exists(dir / "metrics.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "notes.tmp.txt"));
}

TEST(RunLock, ARunContextLocksItsRunDirectoryOnceAndAgainWhenItChanges) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "sub");
  engine::RunContext ctx;
  ctx.comm = dist::make_single_communicator();
  ctx.run.dir = tmp.path().string();
  ctx.lock_run_dir();
  EXPECT_NO_THROW(ctx.lock_run_dir());  // already held
  const std::string top = tmp.path().string(), sub = (tmp.path() / "sub").string();
  EXPECT_THROW({ engine::RunLock l(top); }, InputError);
  ctx.run.dir = sub;
  ctx.lock_run_dir();
  EXPECT_THROW({ engine::RunLock l(sub); }, InputError);
  EXPECT_NO_THROW({ engine::RunLock l(top); });  // the old directory's lock was released
}

TEST(ConfigDrift, EveryChangedKeyIsListedWithBothValuesAndOnlyMeaningfulOnesAreRefused) {
  const std::string changed =
      "run:\n  seed: 5\n  threads: 2\npretrain:\n  base_lr: 0.5\n  max_steps: 6\n"
      "  betas: [0.9, 0.99]\nordering:\n  strategy: raster\n";
  const auto diffs = engine::config_differences(kConfig, changed, "ck");
  std::set<std::string> keys;
  for (const auto& d : diffs) keys.insert(d.key);
  EXPECT_EQ(keys, (std::set<std::string>{"run.seed", "run.threads", "pretrain.base_lr", "pretrain.max_steps",
                                         "pretrain.betas", "ordering.strategy"}));
  const std::string msg =
      input_error([&] { engine::check_config_drift(kConfig, changed, "ck.safetensors"); });
  for (const char* s : {"ck.safetensors", "run.seed: 0 -> 5", "pretrain.base_lr: 0.00015 -> 0.5",
                        "pretrain.betas: [0.9, 0.95] -> [0.9, 0.99]", "ordering.strategy: semantic -> raster",
                        "run.allow_config_change"})
    EXPECT_NE(msg.find(s), std::string::npos) << s << "\n" << msg;
  for (const char* s : {"run.threads:", "pretrain.max_steps"}) EXPECT_EQ(msg.find(s), std::string::npos) << s;
  EXPECT_FALSE(engine::changes_run_meaning("data.num_workers"));
  EXPECT_FALSE(engine::changes_run_meaning("log.every_steps"));
  EXPECT_FALSE(engine::changes_run_meaning("finetune.max_steps"));
  EXPECT_TRUE(engine::changes_run_meaning("pretrain.epochs"));
  EXPECT_TRUE(engine::changes_run_meaning("target.norm_pix"));
  const std::string harmless =
      "run:\n  seed: 0\n  threads: 2\npretrain:\n  base_lr: 0.00015\n  max_steps: 9\n"
      "  betas: [0.9, 0.95]\nordering:\n  strategy: semantic\n  new_key: 1\n";
  EXPECT_NO_THROW(engine::check_config_drift(kConfig, harmless, "ck"));
  EXPECT_NO_THROW(
      engine::check_config_drift(kConfig, "run:\n  allow_config_change: true\n" + changed.substr(5), "ck"));
}

TEST(ConfigDrift, RestoreRefusesACheckpointTrainedWithAnotherConfigAndAcceptsAnAllowedChange) {
  TempDir tmp;
  Tiny a(tmp.file("ck"), kConfig);
  a.state.step = 3;
  const auto p = a.ckpt->save(a.state, "end", true);
  const std::string other = std::string(kConfig).replace(std::string(kConfig).find("seed: 0"), 7, "seed: 9");
  Tiny b(tmp.file("ck"), other);
  const std::string msg = input_error([&] { b.ckpt->restore(b.state, p); });
  EXPECT_NE(msg.find(p.weights), std::string::npos) << msg;
  EXPECT_NE(msg.find("run.seed: 0 -> 9"), std::string::npos) << msg;
  EXPECT_EQ(b.state.step, 0);
  Tiny c(tmp.file("ck"), "run:\n  allow_config_change: true\n" + other.substr(5));
  c.ckpt->restore(c.state, p);
  EXPECT_EQ(c.state.step, 3);
}

TEST(Checkpoints, TheFirstSaveRemovesTempFilesAndOrphansOfKilledSavesAndNothingElse) {
  TempDir tmp;
  const fs::path d = tmp.path() / "ck";
  Tiny t(d.string(), "");
  t.state.step = 1;
  const auto kept = t.ckpt->save(t.state, "every_steps", true);
  const std::vector<std::string> stale = {
      "step-00000002.weights.safetensors", "step-00000002.state.safetensors",
      "step-00000003.weights.safetensors.tmp.4242.0.123456", "step-00000003.json.tmp.4242.1.77"};
  for (const auto& f : stale) std::ofstream(d / f) << "partial";
  std::ofstream(d / "notes.txt") << "mine";
  engine::Checkpointer fresh(engine::CheckpointManager(d.string(), 5), {});
  t.state.step = 4;
  fresh.save(t.state, "every_steps", true);
  for (const auto& f : stale) EXPECT_FALSE(fs::exists(d / f)) << f;
  EXPECT_TRUE(fs::exists(d / "notes.txt"));
  for (const auto& f : {kept.manifest, kept.weights, kept.state}) EXPECT_TRUE(fs::exists(f)) << f;
  EXPECT_EQ(fresh.manager().latest()->step, 4);
}

TEST(Checkpoints, AFailedSaveLeavesNoFileOfItsStepBehind) {
  TempDir tmp;
  engine::CheckpointManager m(tmp.file("ck"), 5);
  m.save(1, one(1), one(1), {}, {});
  // An undefined tensor makes the state write fail after the weights file landed, as a full disk would.
  EXPECT_ANY_THROW(m.save(2, one(2), {{"bad", at::Tensor()}}, {}, {}));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.file("ck"))) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step-00000001.json", "step-00000001.state.safetensors",
                                             "step-00000001.weights.safetensors"}));
}

TEST(Checkpoints, ResumeAutoFallsBackFromABrokenNewestCheckpointToTheNewestIntactOne) {
  TempDir tmp;
  engine::CheckpointManager m(tmp.file("ck"), 5);
  for (int s : {1, 2, 3}) m.save(s, one(s), one(s), {}, {});
  const auto all = m.complete();
  fs::resize_file(all[2].state, fs::file_size(all[2].state) - 4);  // truncated
  std::ofstream(all[1].manifest) << "{\"step\": ";                 // torn manifest
  engine::Checkpointer ck(engine::CheckpointManager(tmp.file("ck"), 5), {});
  const auto from = ck.resume_from("auto", tmp.path().string());
  ASSERT_TRUE(from.has_value());
  EXPECT_EQ(from->step, 1);
  fs::remove(all[0].weights);
  EXPECT_THROW(ck.resume_from("auto", tmp.path().string()), InputError);
}

TEST(Checkpoints, AManifestStepThatIsNotAnIntegerNamesTheFileAndTheField) {
  TempDir tmp;
  for (const char* step : {"\"3\"", "-1", "2.5"}) {
    std::ofstream(tmp.file("step-00000003.json")) << "{\"step\": " << step << "}";
    const std::string msg = input_error([&] { engine::read_manifest(tmp.file("step-00000003.json")); });
    EXPECT_NE(msg.find(tmp.file("step-00000003.json")), std::string::npos) << msg;
    EXPECT_NE(msg.find("'step'"), std::string::npos) << msg;
  }
}

TEST(Checkpoints, AStateFileWithBadInfoOrRngStateNamesTheFileAndTheField) {
  TempDir tmp;
  Tiny a(tmp.file("ck"), "");
  a.state.step = 2;
  const auto p = a.ckpt->save(a.state, "end", true);
  const auto original = io::load_safetensors(p.state);
  auto expect_refused = [&](const io::NamedTensors& tensors, const std::map<std::string, std::string>& meta,
                            const std::string& field) {
    io::save_safetensors(p.state, tensors, meta);
    Tiny b(tmp.file("ck"), "");
    const std::string msg = input_error([&] { b.ckpt->restore(b.state, p); });
    EXPECT_NE(msg.find(p.state), std::string::npos) << msg;
    EXPECT_NE(msg.find(field), std::string::npos) << field << ": " << msg;
  };
  auto meta = original.metadata;
  meta["info"] = "{not json";
  expect_refused(original.tensors, meta, "'info'");
  meta["info"] = "[1, 2]";
  expect_refused(original.tensors, meta, "'info'");
  meta["info"] = R"({"step": "2"})";
  expect_refused(original.tensors, meta, "'step'");
  auto tensors = original.tensors;
  for (auto& [k, t] : tensors)
    if (k == "rng.cpu") t = t.slice(0, 0, 10).clone();
  expect_refused(tensors, original.metadata, "rng.cpu");
  tensors = original.tensors;
  for (auto& [k, t] : tensors)
    if (k.rfind("optim.", 0) == 0 && t.dim() > 0)
      t = at::full_like(t, std::numeric_limits<float>::infinity());
  expect_refused(tensors, original.metadata, "NaN or Inf");
}

TEST(LoadWeights, AnIntegerTensorOrNonFiniteValuesAreRefusedNamingTheFileAndTheKey) {
  torch::nn::Linear m(2, 3);
  const auto good = models::module_weights(*m);
  auto with = [&](const at::Tensor& weight) {
    io::NamedTensors w = good;
    for (auto& [k, t] : w)
      if (k == "weight") t = weight;
    return w;
  };
  for (const at::Tensor& bad : {at::zeros({3, 2}, at::kInt), at::full({3, 2}, std::nan("")),
                                at::full({3, 2}, -std::numeric_limits<float>::infinity())}) {
    const std::string msg =
        input_error([&] { models::load_weights(*m, with(bad), {.where = "file.safetensors"}); });
    EXPECT_NE(msg.find("file.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'weight'"), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(models::load_weights(*m, with(at::ones({3, 2}, at::kDouble)), {.where = "f64"}));
  EXPECT_TRUE(torch::equal(m->weight, torch::ones({3, 2})));
}

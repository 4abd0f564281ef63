// The shared training loop on a toy task (a linear classifier on random images): steps and epochs from a
// resumed position, evaluation hooks and the best checkpoint, skips and the divergence stop, records reaching
// every sink, a stop signal's checkpoint.
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

#include <csignal>
#include <fstream>
#include <limits>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/engine/stop_signals.h"
#include "semaim/engine/trainer.h"
#include "temp_dir.h"

using namespace semaim;
using semaim::test::TempDir;

namespace {

// A sink that keeps the records it was given.
class MemorySink final : public engine::MetricSink {
 public:
  explicit MemorySink(std::vector<nlohmann::json>* out) : out_(out) {}
  void record(const nlohmann::json& rec) override { out_->push_back(rec); }

 private:
  std::vector<nlohmann::json>* out_;
};

struct Toy {
  TempDir tmp;
  torch::nn::Linear model{nullptr};  // built after the seed: every Toy starts from the same weights
  std::unique_ptr<engine::Sgd> opt;
  engine::TrainState state;
  std::unique_ptr<engine::Checkpointer> ckpt;
  engine::RunContext ctx;
  engine::Sinks sinks;
  std::vector<nlohmann::json> records;
  std::unique_ptr<engine::ConsoleSink> console;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<engine::StepRunner> runner;

  explicit Toy(int64_t keep_last = 2) {
    torch::manual_seed(0);
    model = torch::nn::Linear(4, 3);
    engine::GroupRule rule;
    opt = std::make_unique<engine::Sgd>(
        engine::make_param_groups({{"weight", model->weight}, {"bias", model->bias}}, rule),
        engine::SgdOptions{0.9});
    data::ImageSet set{torch::randint(0, 255, {64, 1, 2, 2}, torch::kUInt8), torch::randint(0, 3, {64}),
                       "toy"};
    data::LoaderConfig lc;
    lc.batch_size = 8;
    lc.num_workers = 0;
    lc.augment.out_size = 2;
    lc.augment.transforms = {"center_crop", "normalize"};
    lc.augment.mean = {0.5};
    lc.augment.std = {0.25};
    loader = std::make_unique<data::Loader>(set, lc);
    state.model = model.get();
    state.optimizer = opt.get();
    state.steps_per_epoch = loader->steps_per_epoch();  // 8
    ckpt = std::make_unique<engine::Checkpointer>(
        engine::CheckpointManager(tmp.file("ckpt"), keep_last, engine::BestMetric{"acc", true}),
        std::map<std::string, std::string>{});
    ctx.comm = dist::make_single_communicator();
    ctx.quiet = true;
    sinks.add(std::make_unique<MemorySink>(&records));
    console = std::make_unique<engine::ConsoleSink>("off", true, 0);
    std::vector<at::Tensor> params{model->weight, model->bias};
    runner = std::make_unique<engine::StepRunner>(params, *opt, 1, 0.0, nullptr, nullptr, nullptr);
  }

  engine::LoopSettings loop(int64_t total) const {
    engine::LoopSettings l;
    l.total_steps = total;
    l.images_per_step = 8;
    l.max_consecutive_skips = 3;
    l.schedule.base_lr = 0.1;
    l.schedule.total = 100;
    l.checkpoint.every_epochs = 1;
    l.log.every_steps = 4;
    return l;
  }

  // One step of cross entropy on the next batch; `poison` makes the loss NaN.
  std::function<engine::StepResult(data::Loader&, double)> step(const std::function<bool(int64_t)>& poison) {
    return [this, poison](data::Loader& l, double lr) {
      auto b = l.next();
      runner->begin_micro(0);
      at::Tensor loss = at::cross_entropy_loss(model(b->images.flatten(1)), b->labels);
      if (poison(state.step)) loss = loss * std::numeric_limits<float>::quiet_NaN();
      runner->backward(loss);
      return runner->finish(lr);
    };
  }
};

}  // namespace

TEST(Trainer, RunsToTheTotalLogsEveryKStepsAndKeepsTheBestEvaluatedCheckpoint) {
  Toy t;
  engine::Trainer trainer(t.ctx, t.state, *t.ckpt, t.sinks, *t.console, t.loop(20));
  const double acc[] = {10, 90, 30, 20, 40};  // evaluations at steps 4, 8, 12, 16, 20 (the last at the end)
  int calls = 0;
  trainer.add_eval({4, 0, [&](int64_t step) {
                      EXPECT_EQ(step, 4 * (calls + 1));
                      return nlohmann::json{{"acc", acc[calls++]}};
                    }});
  const auto summary = trainer.run(*t.loader, t.step([](int64_t) { return false; }));
  EXPECT_EQ(summary.steps, 20);
  EXPECT_EQ(calls, 5);
  int train_records = 0, eval_records = 0;
  for (const auto& r : t.records) {
    if (r.contains("loss")) ++train_records;
    if (r.contains("acc")) ++eval_records;
  }
  EXPECT_EQ(train_records, 5);  // steps 4, 8, 12, 16, 20
  EXPECT_EQ(eval_records, 5);
  ASSERT_TRUE(t.ckpt->manager().best().has_value());
  EXPECT_EQ(t.ckpt->manager().best()->step, 8);
  EXPECT_EQ(t.ckpt->manager().latest()->step, 20);
  EXPECT_EQ(engine::read_manifest(t.ckpt->manager().latest()->manifest)["reason"], "end");
}

TEST(Trainer, ResumesMidEpochAtTheSavedStepAndSkipsNonFiniteSteps) {
  Toy a;
  engine::Trainer first(a.ctx, a.state, *a.ckpt, a.sinks, *a.console, a.loop(6));
  auto s1 = first.run(*a.loader, a.step([](int64_t step) { return step == 2; }));
  EXPECT_EQ(s1.steps, 6);
  EXPECT_EQ(s1.skipped_steps, 1);
  Toy b;
  engine::Checkpointer& ck = *b.ckpt;
  ck.restore(b.state, *a.ckpt->manager().latest());
  EXPECT_EQ(b.state.step, 6);
  EXPECT_EQ(b.state.batch_in_epoch(), 6);
  EXPECT_TRUE(torch::equal(b.model->weight, a.model->weight));
}

TEST(Trainer, StopsWithADivergedCheckpointAfterTooManyConsecutiveSkips) {
  Toy t;
  engine::Trainer trainer(t.ctx, t.state, *t.ckpt, t.sinks, *t.console, t.loop(20));
  try {
    trainer.run(*t.loader, t.step([](int64_t step) { return step >= 5; }));
    FAIL() << "expected a RuntimeFailure";
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("3 consecutive"), std::string::npos) << e.what();
  }
  auto m = engine::read_manifest(t.ckpt->manager().latest()->manifest);
  EXPECT_EQ(m["reason"], "diverged");
  EXPECT_EQ(m["skipped_total"], 3);
}

TEST(Trainer, AStopSignalEndsTheRunAfterTheStepInProgressWithACheckpointThatResumesBitwise) {
  Toy a;
  engine::Trainer first(a.ctx, a.state, *a.ckpt, a.sinks, *a.console, a.loop(20));
  const auto raise_at_5 = [&a](data::Loader& l, double lr) {
    if (a.state.step == 5) std::raise(SIGTERM);  // arrives while step 5 runs
    return a.step([](int64_t) { return false; })(l, lr);
  };
  try {
    first.run(*a.loader, raise_at_5);
    FAIL() << "expected semaim::Preempted";
  } catch (const Preempted& e) {
    EXPECT_EQ(e.signal(), SIGTERM);
    EXPECT_NE(std::string(e.what()).find("SIGTERM at step 6"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(a.ckpt->manager().latest()->manifest), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(engine::StopSignals::pending(), 0);  // the handlers are gone with the run
  ASSERT_EQ(a.ckpt->manager().latest()->step, 6);
  EXPECT_EQ(engine::read_manifest(a.ckpt->manager().latest()->manifest)["reason"], "preempted");
  Toy b;
  b.ckpt->restore(b.state, *a.ckpt->manager().latest());
  engine::Trainer resumed(b.ctx, b.state, *b.ckpt, b.sinks, *b.console, b.loop(20));
  resumed.run(*b.loader, b.step([](int64_t) { return false; }));
  Toy c;
  engine::Trainer straight(c.ctx, c.state, *c.ckpt, c.sinks, *c.console, c.loop(20));
  straight.run(*c.loader, c.step([](int64_t) { return false; }));
  EXPECT_TRUE(torch::equal(b.model->weight, c.model->weight));
  EXPECT_TRUE(torch::equal(b.model->bias, c.model->bias));
}

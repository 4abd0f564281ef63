// pretrain.checkpoint_blocks on a tiny Fashion-MNIST pretraining run: the run trains (finite, falling loss)
// and ends at the weights of the same run without checkpointing.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "semaim/config/config.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/io/safetensors.h"
#include "semaim/tasks/pretrain.h"
#include "semaim/tasks/schema.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::config::Config;
using semaim::engine::CheckpointManager;
using semaim::tasks::PretrainOptions;
using semaim::tasks::PretrainResult;

namespace {

// tests/tasks/test_pretrain.cpp's tiny model and data, four optimizer steps.
Config tiny_run(const fs::path& out, const std::string& name, int64_t checkpoint_blocks) {
  Config c = Config::defaults(semaim::tasks::schema());
  c.apply_overrides({"run.output_dir=" + out.string(),
                     "run.name=" + name,
                     "run.threads=1",
                     "model.embed_dim=32",
                     "model.depth=2",
                     "model.num_heads=2",
                     "model.decoder_depth=2",
                     "data.limit=256",
                     "data.num_workers=1",
                     "pretrain.batch_size=32",
                     "pretrain.accum_steps=2",
                     "pretrain.epochs=2",
                     "pretrain.max_steps=4",
                     "pretrain.warmup_epochs=0.5",
                     "pretrain.base_lr=0.01",
                     "log.every_steps=1",
                     "log.progress=off",
                     "checkpoint.every_epochs=0",
                     "ordering.strategy=semantic",
                     "pretrain.checkpoint_blocks=" + std::to_string(checkpoint_blocks)});
  return c;
}

PretrainResult run(const Config& c) {
  PretrainOptions o;
  o.quiet = true;
  return semaim::tasks::pretrain(c, o);
}

}  // namespace

TEST(PretrainRecompute, CheckpointedRunTrainsToTheWeightsOfThePlainRun) {
  semaim::test::TempDir tmp;
  const PretrainResult plain = run(tiny_run(tmp.path(), "plain", 0));
  const PretrainResult ckpt = run(tiny_run(tmp.path(), "ckpt", 2));
  ASSERT_EQ(ckpt.steps, 4);
  EXPECT_TRUE(std::isfinite(ckpt.first_loss) && std::isfinite(ckpt.last_loss));
  EXPECT_EQ(ckpt.skipped_steps, 0);
  EXPECT_LT(ckpt.last_loss, ckpt.first_loss);
  EXPECT_NEAR(ckpt.last_loss, plain.last_loss, 1e-5 * std::abs(plain.last_loss));
  const auto wa =
      semaim::io::load_safetensors(CheckpointManager::resolve(plain.last_checkpoint).weights).tensors;
  const auto wb =
      semaim::io::load_safetensors(CheckpointManager::resolve(ckpt.last_checkpoint).weights).tensors;
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    ASSERT_EQ(wa[i].first, wb[i].first);
    const double scale = wa[i].second.abs().max().item<double>();
    EXPECT_LE((wb[i].second - wa[i].second).abs().max().item<double>(), 1e-5 * scale) << wa[i].first;
  }
}

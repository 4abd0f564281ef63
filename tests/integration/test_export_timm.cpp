// `semaim export` writes an encoder that timm's VisionTransformer of the same size loads with no missing or
// unexpected keys and that gives the same features as semaim on the same input.
#include <gtest/gtest.h>

#include <filesystem>

#include "run_command.h"
#include "semaim/config/config.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/weights.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;

TEST(ExportTimm, TimmLoadsTheEncoderStrictlyAndReproducesItsFeatures) {
  if (!fs::exists(SEMAIM_PYTHON))
    GTEST_SKIP() << "no venv python at " << SEMAIM_PYTHON << " (run tools/setup.sh)";
  const semaim::test::TempDir tmp;
  const fs::path& dir = tmp.path();
  const std::string set =
      " --set run.output_dir=" + dir.string() +
      " --set run.name=exp --set run.threads=1 --set model.embed_dim=48 --set model.depth=2"
      " --set model.num_heads=3 --set model.decoder_depth=1 --set data.limit=64"
      " --set pretrain.batch_size=32 --set pretrain.epochs=1 --set log.progress=off";
  auto pre = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " config" + set + " > " +
                                          (dir / "cfg.yaml").string());
  ASSERT_EQ(pre.exit_code, 0) << pre.output;
  auto cfg_path = (dir / "cfg.yaml").string();
  auto train = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " pretrain " + cfg_path);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const auto enc = (dir / "encoder.safetensors").string();
  auto ex = semaim::testing::run_command(std::string(SEMAIM_BINARY) + " export --checkpoint " +
                                         (dir / "exp").string() + " -o " + enc);
  ASSERT_EQ(ex.exit_code, 0) << ex.output;

  // semaim's own features of the trained encoder on a fixed input.
  auto cfg = semaim::config::Config::load(semaim::tasks::schema(), cfg_path);
  auto model = semaim::tasks::build_aim(cfg);
  auto ck = semaim::engine::CheckpointManager::resolve((dir / "exp").string());
  semaim::models::load_weights(*model, semaim::io::load_safetensors(ck.weights).tensors,
                               {.where = ck.weights});
  model->eval();
  torch::manual_seed(3);
  auto input = torch::randn({4, 1, 28, 28});
  at::Tensor feats;
  {
    torch::NoGradGuard ng;
    feats = model->encode(input);
  }
  const auto ref = (dir / "reference.safetensors").string();
  semaim::io::save_safetensors(ref, {{"input", input}, {"features", feats}});
  auto check = semaim::testing::run_command(std::string(SEMAIM_PYTHON) + " " + SEMAIM_SOURCE_DIR +
                                            "/tests/integration/check_timm_export.py " + enc + " " + ref);
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("max abs diff"), std::string::npos) << check.output;
}

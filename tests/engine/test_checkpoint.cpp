// Checkpoint manager: complete pairs only, pruning to keep_last (never the best by a metric), resolution of
// paths, clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "semaim/core/errors.h"
#include "semaim/engine/checkpointer.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace semaim::engine;
using semaim::test::TempDir;

namespace {
semaim::io::NamedTensors one(float v) { return {{"w", torch::full({2}, v)}}; }
}  // namespace

TEST(Checkpoints, KeepsNewestKAndLatestIsNewestComplete) {
  TempDir tmp;
  const fs::path d = tmp.path() / "ckpt";
  CheckpointManager m(d.string(), 2);
  for (int s : {10, 20, 30}) m.save(s, one(s), one(-s), {{"step", s}}, {});
  auto all = m.complete();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].step, 20);
  EXPECT_EQ(m.latest()->step, 30);
  EXPECT_FALSE(fs::exists(d / "step-00000010.weights.safetensors"));
  auto w = semaim::io::load_safetensors(m.latest()->weights);
  EXPECT_FLOAT_EQ(w.tensors[0].second[0].item<float>(), 30.f);
}

TEST(Checkpoints, AManifestWithoutItsFilesIsNotComplete) {
  TempDir tmp;
  const fs::path d = tmp.path() / "ckpt";
  CheckpointManager m(d.string(), 5);
  m.save(1, one(1), one(1), {}, {});
  auto p2 = m.save(2, one(2), one(2), {}, {});
  fs::remove(p2.state);  // as if the process died before the state file landed
  EXPECT_EQ(m.latest()->step, 1);
}

TEST(Checkpoints, ResolveAcceptsRunDirManifestAndWeightsPaths) {
  TempDir tmp;
  const fs::path d = tmp.path() / "ckpt";
  CheckpointManager m((d / "checkpoints").string(), 5);
  auto p = m.save(7, one(7), one(7), {}, {});
  EXPECT_EQ(CheckpointManager::resolve(d.string()).step, 7);
  EXPECT_EQ(CheckpointManager::resolve(p.manifest).weights, p.weights);
  EXPECT_EQ(CheckpointManager::resolve(p.weights).state, p.state);
  EXPECT_THROW(CheckpointManager::resolve((d / "nothing").string()), semaim::InputError);
  std::ofstream((d / "junk.txt").string()) << "x";
  EXPECT_THROW(CheckpointManager::resolve((d / "junk.txt").string()), semaim::InputError);
  std::ofstream(p.manifest) << "{not json";
  try {
    CheckpointManager::resolve(p.weights);
    FAIL();
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(p.manifest), std::string::npos) << e.what();
  }
}

TEST(Checkpoints, TheBestByAMetricSurvivesPruning) {
  TempDir tmp;
  CheckpointManager m(tmp.file("ckpt"), 1, BestMetric{"top1", true});
  const double top1[] = {50.0, 71.5, 60.0, 65.0};
  for (int s = 1; s <= 4; ++s) m.save(s, one(s), one(s), {{"metrics", {{"top1", top1[s - 1]}}}}, {});
  auto all = m.complete();
  ASSERT_EQ(all.size(), 2u);  // the newest and the best
  EXPECT_EQ(all[0].step, 2);
  EXPECT_EQ(all[1].step, 4);
  ASSERT_TRUE(m.best().has_value());
  EXPECT_EQ(m.best()->step, 2);
  CheckpointManager lower(tmp.file("loss"), 1, BestMetric{"loss", false});
  for (int s = 1; s <= 3; ++s) lower.save(s, one(s), one(s), {{"metrics", {{"loss", 1.0 / s}}}}, {});
  EXPECT_EQ(lower.best()->step, 3);
  EXPECT_EQ(lower.complete().size(), 1u);
  CheckpointManager none(tmp.file("none"), 1);
  none.save(1, one(1), one(1), {}, {});
  EXPECT_FALSE(none.best().has_value());
}

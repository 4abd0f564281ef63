// Checkpoint manager: complete pairs only, pruning to keep_last, resolution of paths, clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "semaim/config/errors.h"
#include "semaim/train/checkpoint.h"

namespace fs = std::filesystem;
using namespace semaim::train;

namespace {
fs::path fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("semaim_ckpt_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  return d;
}
semaim::io::NamedTensors one(float v) { return {{"w", torch::full({2}, v)}}; }
}  // namespace

TEST(Checkpoints, KeepsNewestKAndLatestIsNewestComplete) {
  auto d = fresh_dir("keep");
  CheckpointManager m(d.string(), 2);
  for (int s : {10, 20, 30}) m.save(s, one(s), one(-s), {{"step", s}}, {});
  auto all = m.complete();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].step, 20);
  EXPECT_EQ(m.latest()->step, 30);
  EXPECT_FALSE(fs::exists(d / "step-00000010.weights.safetensors"));
  auto w = semaim::io::load_safetensors(m.latest()->weights);
  EXPECT_FLOAT_EQ(w.tensors[0].second[0].item<float>(), 30.f);
  fs::remove_all(d);
}

TEST(Checkpoints, AManifestWithoutItsFilesIsNotComplete) {
  auto d = fresh_dir("incomplete");
  CheckpointManager m(d.string(), 5);
  m.save(1, one(1), one(1), {}, {});
  auto p2 = m.save(2, one(2), one(2), {}, {});
  fs::remove(p2.state);  // as if the process died before the state file landed
  EXPECT_EQ(m.latest()->step, 1);
  fs::remove_all(d);
}

TEST(Checkpoints, ResolveAcceptsRunDirManifestAndWeightsPaths) {
  auto d = fresh_dir("resolve");
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
  fs::remove_all(d);
}

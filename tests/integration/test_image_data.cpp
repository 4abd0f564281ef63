// `semaim pretrain` and `semaim linprobe` on image folders from config (the sample corpus): bad files skipped
// and counted in the epoch summary, or failing the run under data.on_bad_image: fail; start-up errors for a
// missing root; the ImageNet-1k ViT-B/16 recipe resolves.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_command.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::testing::run_command;

namespace {

const std::string kBin = SEMAIM_BINARY;
const std::string kCorpusConfig =
    std::string(SEMAIM_SOURCE_DIR) + "/configs/pretrain/aim-tiny-p16_1xb32-semantic_corpus.yaml";
// The first 450 training files (sorted): astronaut, cameraman, then cat/broken_empty.JPEG and 49 cats.
const std::string kSmall =
    " --set run.threads=1 --set model.embed_dim=64 --set model.depth=2 --set model.num_heads=2"
    " --set model.decoder_depth=2 --set data.limit=450 --set pretrain.epochs=1 --set log.progress=off"
    " --set linprobe.epochs=2 --set data.root=" SEMAIM_CORPUS_DIR;

class ImageData : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(fs::path(SEMAIM_CORPUS_DIR) / ".complete"))
        << "run tools/setup.sh (sample corpus)";
  }
  std::string out_dir() const {
    return " --set run.output_dir=" + tmp_.path().string() + " --set run.name=r";
  }
  semaim::test::TempDir tmp_;
};

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_F(ImageData, PretrainAndLinprobeRunOnImageFoldersCountingTheBadFile) {
  auto r = run_command(kBin + " pretrain " + kCorpusConfig + kSmall + out_dir());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("skipping bad image"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("broken_empty.JPEG: empty file"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("epoch 0 done: 1 bad image(s) skipped"), std::string::npos) << r.output;
  const auto summary = read_json(tmp_.path() / "r" / "pretrain_summary.json");
  EXPECT_EQ(summary.at("bad_images").get<int64_t>(), 1);
  EXPECT_EQ(summary.at("steps").get<int64_t>(), 450 / 32);
  auto p = run_command(kBin + " linprobe " + kCorpusConfig + kSmall + out_dir());
  ASSERT_EQ(p.exit_code, 0) << p.output;
  const auto probe = read_json(tmp_.path() / "r" / "linprobe.json");
  EXPECT_EQ(probe.at("n_train").get<int64_t>(), 450);  // data.limit applies to the training split
  EXPECT_EQ(probe.at("n_test").get<int64_t>(), 200);
  EXPECT_EQ(probe.at("bad_images").get<int64_t>(), 1);
}

TEST_F(ImageData, OnBadImageFailStopsTheRunNamingTheFile) {
  auto r =
      run_command(kBin + " pretrain " + kCorpusConfig + kSmall + out_dir() + " --set data.on_bad_image=fail");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("broken_empty.JPEG"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("on_bad_image: fail"), std::string::npos) << r.output;
}

TEST_F(ImageData, MissingRootAndUnlabeledProbeAreClearStartupErrors) {
  auto r = run_command(kBin + " pretrain " + kCorpusConfig + kSmall + out_dir() +
                       " --set data.root=" + tmp_.file("nowhere"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nowhere/train: dataset root does not exist"), std::string::npos) << r.output;
  auto u = run_command(kBin + " linprobe " + kCorpusConfig + kSmall + out_dir() +
                       " --set data.dataset=unlabeled_folder --random-init");
  EXPECT_EQ(u.exit_code, 2) << u.output;
  EXPECT_NE(u.output.find("unlabeled_folder has no labelled evaluation split"), std::string::npos)
      << u.output;
}

TEST_F(ImageData, ListFilesAndUnlabeledFoldersPretrainFromConfig) {
  for (const std::string kind : {"image_list", "unlabeled_folder"}) {
    auto r =
        run_command(kBin + " pretrain " + kCorpusConfig + kSmall + out_dir() + " --set pretrain.max_steps=2" +
                    " --set data.dataset=" + kind + " --set run.name=" + kind);
    ASSERT_EQ(r.exit_code, 0) << kind << "\n" << r.output;
    EXPECT_TRUE(fs::exists(tmp_.path() / kind / "pretrain_summary.json")) << kind;
  }
}

TEST_F(ImageData, ImageNetRecipeResolvesToSpecValues) {
  auto c = run_command(kBin + " config " + std::string(SEMAIM_SOURCE_DIR) +
                       "/configs/pretrain/aim-base-p16_8xb256-semantic-800e_in1k.yaml");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  for (const char* want :
       {"name: \"aim_base_patch16\"", "img_size: 224", "dataset: \"image_folder\"", "epochs: 800",
        "batch_size: 256", "base_lr: 0.0002", "warmup_epochs: 30", "clip_grad: 3", "strategy: \"semantic\"",
        "eval_crop_pct: 0.875", "crop_scale: [0.2"}) {
    EXPECT_NE(c.output.find(want), std::string::npos) << want << "\n" << c.output;
  }
}

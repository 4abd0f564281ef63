// The segmentation task on fmnist-seg with a tiny UperNet: it trains, evaluates on the validation split (the
// metric and the best checkpoint by mIoU recorded), resumes bitwise, starts from a pretraining run's encoder,
// and the ADE20K recipes hold the reference values.
#include <gtest/gtest.h>

#include <filesystem>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/data/label_map.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/io/safetensors.h"
#include "semaim/tasks/pretrain.h"
#include "semaim/tasks/schema.h"
#include "semaim/tasks/segment.h"
#include "run_files.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::config::Config;
using namespace semaim::tasks;

namespace {

bool have_data() { return fs::exists(std::string(SEMAIM_SEGDATA_DIR) + "/.complete"); }

Config tiny(const fs::path& out, const std::string& name) {
  Config c = Config::load(schema(), std::string(SEMAIM_SOURCE_DIR) + "/configs/segment/upernet-fmnist-p4_1xb16-fmnist_seg.yaml", {});
  c.apply_overrides({"run.output_dir=" + out.string(), "run.name=" + name, "run.threads=1",
                     "segment.data_root=" + std::string(SEMAIM_SEGDATA_DIR), "model.embed_dim=32",
                     "model.num_heads=2", "model.decoder_depth=2",
                     "segment.channels=8", "segment.aux_channels=8", "segment.batch_size=4", "segment.iters=6",
                     "segment.warmup_iters=2", "segment.lr=0.002", "segment.eval_every_steps=3",
                     "segment.eval_limit=24", "checkpoint.every_steps=3", "log.every_steps=1", "log.progress=off"});
  return c;
}

SegmentResult train_quietly(const Config& c, const std::string& resume = "") {
  return segment_train(c, SegmentTrainOptions{resume, true});
}

semaim::io::NamedTensors weights(const std::string& manifest) {
  return semaim::io::load_safetensors(semaim::engine::CheckpointManager::resolve(manifest).weights).tensors;
}

}  // namespace

TEST(Segment, TrainsEvaluatesAndKeepsTheBestCheckpointByMiou) {
  if (!have_data()) GTEST_SKIP() << "no fmnist-seg at " << SEMAIM_SEGDATA_DIR << " (run tools/setup.sh)";
  semaim::test::TempDir tmp;
  const SegmentResult r = train_quietly(tiny(tmp.path(), "seg"));
  EXPECT_EQ(r.steps, 6);
  EXPECT_EQ(r.scores.images, 24);
  EXPECT_EQ(r.scores.iou.size(), 11u);
  EXPECT_GT(r.scores.aacc, 0.0);
  EXPECT_GE(r.best_miou, r.scores.miou);
  EXPECT_EQ(semaim::test::count_records_with(r.run_dir, "mIoU"), 2);
  ASSERT_FALSE(r.best_checkpoint.empty());
  EXPECT_DOUBLE_EQ(semaim::engine::read_manifest(r.best_checkpoint)["metrics"]["mIoU"].get<double>(), r.best_miou);
  EXPECT_DOUBLE_EQ(semaim::test::read_summary(r.run_dir, "segment")["mIoU"].get<double>(), r.scores.miou);
  EXPECT_TRUE(fs::exists(fs::path(r.run_dir) / "segment_classes.csv"));
}

TEST(Segment, PredictWritesPalettePngsThatScoreAsTheRunsOwnEvaluation) {
  if (!have_data()) GTEST_SKIP() << "no fmnist-seg at " << SEMAIM_SEGDATA_DIR << " (run tools/setup.sh)";
  semaim::test::TempDir tmp;
  const Config c = tiny(tmp.path(), "seg");
  const SegmentResult r = train_quietly(c);
  // The run's last evaluation scored the first 24 validation images: copy them and their label maps.
  const fs::path root(SEMAIM_SEGDATA_DIR);
  fs::create_directories(tmp.path() / "images" / "sub");
  fs::create_directories(tmp.path() / "gt" / "sub");
  for (int i = 0; i < 24; ++i) {
    char stem[32];
    std::snprintf(stem, sizeof stem, "fseg_%05d", i);
    fs::copy_file(root / "images/validation" / (std::string(stem) + ".jpg"), tmp.path() / "images/sub" / (std::string(stem) + ".jpg"));
    fs::copy_file(root / "annotations/validation" / (std::string(stem) + ".png"), tmp.path() / "gt/sub" / (std::string(stem) + ".png"));
  }
  SegmentPredictOptions po;
  po.checkpoint = r.last_checkpoint;
  po.images = (tmp.path() / "images").string();
  po.out_dir = (tmp.path() / "pred").string();
  po.quiet = true;
  EXPECT_EQ(segment_predict(c, po), 24);
  const fs::path first = tmp.path() / "pred/sub/fseg_00000.png";
  ASSERT_TRUE(fs::exists(first));
  const at::Tensor pred = semaim::data::read_label_map(first.string());
  EXPECT_EQ(pred.sizes(), semaim::data::read_label_map((tmp.path() / "gt/sub/fseg_00000.png").string()).sizes());
  EXPECT_LT(pred.max().item<int>(), 11);
  std::ifstream png(first, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(png)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find("PLTE"), std::string::npos);  // a palette image
  // Scored like the run's evaluation of the same checkpoint: the same numbers.
  semaim::eval::LabelFolders f;
  f.pred_dir = (tmp.path() / "pred/sub").string();
  f.gt_dir = (tmp.path() / "gt/sub").string();
  f.reduce_zero_label = true;
  f.num_classes = 11;
  const semaim::eval::SegScores s = semaim::eval::evaluate_label_folders(f);
  EXPECT_EQ(s.images, 24);
  EXPECT_DOUBLE_EQ(s.miou, r.scores.miou);
  EXPECT_DOUBLE_EQ(s.aacc, r.scores.aacc);
  // A checkpoint of another model is an error naming its weights file.
  Config other = c;
  other.apply_overrides({"segment.channels=16"});
  po.out_dir = (tmp.path() / "pred2").string();
  try {
    segment_predict(other, po);
    ADD_FAILURE() << "a checkpoint of another architecture was accepted";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("weights.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "pred2"));
}

TEST(Segment, SlidingWindowsWorkWhenTheDecodeHeadIsCoarserThanTheInput) {
  if (!have_data()) GTEST_SKIP() << "no fmnist-seg at " << SEMAIM_SEGDATA_DIR << " (run tools/setup.sh)";
  semaim::test::TempDir tmp;
  // Patch 16 as ViT-B: the neck's finest level is 4x the token grid, a quarter of each 32x32 window.
  Config c = tiny(tmp.path(), "p16");
  c.apply_overrides({"model.name=aim_tiny_patch16", "model.depth=4", "model.embed_dim=32", "model.num_heads=2",
                     "segment.crop_size=64", "segment.mode=slide", "segment.slide_crop=32",
                     "segment.slide_stride=24", "segment.max_steps=1", "segment.eval_limit=8"});
  const SegmentResult r = train_quietly(c);
  EXPECT_EQ(r.scores.images, 8);
  EXPECT_GT(r.scores.aacc, 0.0);
}

TEST(Segment, ResumeIsBitwiseEqualToAnUninterruptedRun) {
  if (!have_data()) GTEST_SKIP() << "no fmnist-seg at " << SEMAIM_SEGDATA_DIR << " (run tools/setup.sh)";
  semaim::test::TempDir tmp;
  const SegmentResult a = train_quietly(tiny(tmp.path(), "straight"));
  Config first = tiny(tmp.path(), "split");
  first.apply_overrides({"segment.max_steps=3"});
  ASSERT_EQ(train_quietly(first).steps, 3);
  const SegmentResult b = train_quietly(tiny(tmp.path(), "split"), "auto");
  ASSERT_EQ(b.steps, 6);
  const auto wa = weights(a.last_checkpoint), wb = weights(b.last_checkpoint);
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wa[i].first, wb[i].first);
    EXPECT_TRUE(at::equal(wa[i].second, wb[i].second)) << wa[i].first;
  }
  EXPECT_DOUBLE_EQ(a.scores.miou, b.scores.miou);
}

TEST(Segment, StartsFromThePretrainedEncoderOfARun) {
  if (!have_data()) GTEST_SKIP() << "no fmnist-seg at " << SEMAIM_SEGDATA_DIR << " (run tools/setup.sh)";
  semaim::test::TempDir tmp;
  Config pre = tiny(tmp.path(), "pre");
  pre.apply_overrides({"model.in_chans=1", "data.mean=[0.2860]", "data.std=[0.3530]", "data.limit=256",
                       "pretrain.batch_size=32", "pretrain.max_steps=2", "data.num_workers=1"});
  PretrainOptions po;
  po.quiet = true;
  pretrain(pre, po);
  Config seg = tiny(tmp.path(), "from-pre");
  seg.apply_overrides({"segment.init=" + (tmp.path() / "pre").string(), "segment.max_steps=1"});
  const SegmentResult r = train_quietly(seg);
  // The encoder's blocks came from the pretraining run: block 1's weights differ from a random start's.
  Config rnd = tiny(tmp.path(), "from-random");
  rnd.apply_overrides({"segment.max_steps=1"});
  const SegmentResult q = train_quietly(rnd);
  const auto wr = weights(r.last_checkpoint), wq = weights(q.last_checkpoint);
  bool differs = false;
  for (size_t i = 0; i < wr.size(); ++i)
    if (wr[i].first == "backbone.blocks.1.attn.qkv.weight") differs = !at::equal(wr[i].second, wq[i].second);
  EXPECT_TRUE(differs);
}

TEST(Segment, Ade20kRecipesHoldTheReferenceValues) {
  const std::string dir = std::string(SEMAIM_SOURCE_DIR) + "/configs/segment/";
  const Config b = Config::load(schema(), dir + "upernet-vit-b16_8xb2-160k_ade20k-512x512.yaml", {});
  EXPECT_EQ(b.get_string("model.name"), "vit_base_patch16");
  EXPECT_EQ(b.get_int("segment.batch_size") * 8, 16);
  EXPECT_DOUBLE_EQ(b.get_float("segment.lr"), 1e-4);
  EXPECT_EQ(b.get_floats("segment.betas"), (std::vector<double>{0.9, 0.999}));
  EXPECT_DOUBLE_EQ(b.get_float("segment.weight_decay"), 0.05);
  EXPECT_DOUBLE_EQ(b.get_float("segment.layer_decay"), 0.65);
  EXPECT_EQ(b.get_int("segment.iters"), 160000);
  EXPECT_EQ(b.get_int("segment.warmup_iters"), 1500);
  EXPECT_DOUBLE_EQ(b.get_float("segment.poly_power"), 1.0);
  EXPECT_EQ(b.get_int("segment.crop_size"), 512);
  EXPECT_EQ(b.get_floats("segment.scale"), (std::vector<double>{2048, 512}));
  EXPECT_EQ(b.get_floats("segment.ratio_range"), (std::vector<double>{0.5, 2.0}));
  EXPECT_DOUBLE_EQ(b.get_float("segment.cat_max_ratio"), 0.75);
  EXPECT_EQ(b.get_ints("segment.out_indices"), (std::vector<int64_t>{3, 5, 7, 11}));
  EXPECT_EQ(b.get_int("segment.channels"), 768);
  EXPECT_EQ(b.get_ints("segment.pool_scales"), (std::vector<int64_t>{1, 2, 3, 6}));
  EXPECT_EQ(b.get_int("segment.aux_channels"), 256);
  EXPECT_DOUBLE_EQ(b.get_float("segment.aux_weight"), 0.4);
  EXPECT_EQ(b.get_string("segment.mode"), "slide");
  EXPECT_EQ(b.get_int("segment.slide_crop"), 512);
  EXPECT_EQ(b.get_int("segment.slide_stride"), 341);
  const Config l = Config::load(schema(), dir + "upernet-vit-l16_8xb2-160k_ade20k-512x512.yaml", {});
  EXPECT_EQ(l.get_string("model.name"), "vit_large_patch16");
  EXPECT_EQ(l.get_ints("segment.out_indices"), (std::vector<int64_t>{7, 11, 15, 23}));
  EXPECT_EQ(l.get_int("segment.channels"), 1024);
}

// The fine-tuning and k-NN tasks on real Fashion-MNIST images with a tiny model: a run learns and evaluates
// on the validation split, resume is bitwise exact (mixup, drop path and the schedule included), the
// encoder of a pretraining run initializes it, MAE's layer-decay groups, and the ImageNet recipes' values.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/io/safetensors.h"
#include "semaim/tasks/finetune.h"
#include "semaim/tasks/jobs.h"
#include "semaim/tasks/pretrain.h"
#include "semaim/tasks/schema.h"
#include "run_files.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::config::Config;
using namespace semaim::tasks;
using semaim::engine::CheckpointManager;
using semaim::test::TempDir;

namespace {

Config tiny_config(const fs::path& out, const std::string& name) {
  Config c = Config::defaults(schema());
  c.apply_overrides({"run.output_dir=" + out.string(),
                     "run.name=" + name,
                     "run.threads=1",
                     "model.embed_dim=32",
                     "model.depth=2",
                     "model.num_heads=2",
                     "model.decoder_depth=2",
                     "data.limit=512",
                     "data.num_workers=1",
                     "finetune.batch_size=32",
                     "finetune.accum_steps=2",
                     "finetune.epochs=2",
                     "finetune.warmup_epochs=0.5",
                     "finetune.base_lr=0.01",
                     "finetune.eval_limit=300",
                     "finetune.eval_batch_size=128",
                     "data.crop_scale=[0.9, 1.0]",
                     "log.every_steps=1",
                     "log.progress=off",
                     "checkpoint.every_epochs=1",
                     "pretrain.batch_size=32",
                     "pretrain.epochs=1",
                     "pretrain.max_steps=4",
                     "pretrain.base_lr=0.01",
                     "knn.k=[1, 5, 20]",
                     "knn.train_limit=500",
                     "knn.test_limit=200"});
  return c;
}

semaim::io::NamedTensors final_weights(const FinetuneResult& r) {
  return semaim::io::load_safetensors(CheckpointManager::resolve(r.last_checkpoint).weights).tensors;
}

// A short, quiet pretraining run (the encoder the other tasks start from).
PretrainResult pretrain_quietly(const Config& c) {
  PretrainOptions po;
  po.quiet = true;
  return pretrain(c, po);
}

FinetuneOptions quiet() {
  FinetuneOptions o;
  o.quiet = true;
  return o;
}

}  // namespace

TEST(Finetune, LearnsAndEvaluatesOnTheValidationSplit) {
  TempDir tmp;
  Config c = tiny_config(tmp.path(), "ft");
  c.apply_overrides({"finetune.mixup=0", "finetune.cutmix=0", "finetune.epochs=3", "data.limit=2048",
                     "finetune.accum_steps=1", "finetune.batch_size=64", "finetune.base_lr=0.03",
                     "finetune.layer_decay=1.0"});
  const FinetuneResult r = finetune(c, quiet());
  EXPECT_EQ(r.steps, 3 * 2048 / 64);
  EXPECT_EQ(r.n_val, 300);
  EXPECT_LT(r.last_loss, r.first_loss);
  EXPECT_GT(r.top1, 40.0);  // 10 classes: chance is 10%
  EXPECT_GE(r.top5, r.top1);
  EXPECT_GE(r.best_top1, r.top1);
  // Every evaluation is in metrics.jsonl and in its checkpoint's manifest; the best one is kept.
  EXPECT_EQ(semaim::test::count_records_with(r.run_dir, "top1"), 3);
  ASSERT_FALSE(r.best_checkpoint.empty());
  EXPECT_DOUBLE_EQ(semaim::engine::read_manifest(r.best_checkpoint)["metrics"]["top1"].get<double>(),
                   r.best_top1);
  EXPECT_DOUBLE_EQ(semaim::test::read_summary(r.run_dir, "finetune")["top1"].get<double>(), r.top1);
}

TEST(Finetune, ResumeWithMixupAndDropPathIsBitwiseEqualToAnUninterruptedRun) {
  TempDir tmp;
  Config straight = tiny_config(tmp.path(), "straight");
  straight.apply_overrides({"finetune.max_steps=6", "finetune.drop_path=0.2", "finetune.ema=true"});
  const auto a = finetune(straight, quiet());
  Config first = tiny_config(tmp.path(), "split");
  first.apply_overrides({"finetune.max_steps=3", "finetune.drop_path=0.2", "finetune.ema=true"});
  ASSERT_EQ(finetune(first, quiet()).steps, 3);
  Config second = tiny_config(tmp.path(), "split");
  second.apply_overrides({"finetune.max_steps=6", "finetune.drop_path=0.2", "finetune.ema=true"});
  FinetuneOptions resume = quiet();
  resume.resume = "auto";
  const auto b = finetune(second, resume);
  ASSERT_EQ(b.steps, 6);
  const auto wa = final_weights(a), wb = final_weights(b);
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wa[i].first, wb[i].first);
    EXPECT_TRUE(at::equal(wa[i].second, wb[i].second)) << wa[i].first;
  }
  EXPECT_DOUBLE_EQ(a.top1, b.top1);
  EXPECT_DOUBLE_EQ(a.ema_top1, b.ema_top1);
}

TEST(Finetune, StartsFromThePretrainedEncoderOfARun) {
  TempDir tmp;
  Config c = tiny_config(tmp.path(), "pre");
  const PretrainResult pre = pretrain_quietly(c);
  Config ft = tiny_config(tmp.path(), "ft");
  ft.apply_overrides({"finetune.init=" + pre.run_dir, "finetune.max_steps=1", "finetune.base_lr=0.0"});
  const FinetuneResult r = finetune(ft, quiet());
  // lr 0 for one step: the encoder weights are the pretrained ones (the learnable position table included).
  const auto pre_w =
      semaim::io::load_safetensors(CheckpointManager::resolve(pre.last_checkpoint).weights).tensors;
  std::map<std::string, at::Tensor> pre_map(pre_w.begin(), pre_w.end());
  int compared = 0;
  for (const auto& [k, t] : final_weights(r)) {
    if (k.rfind("head", 0) == 0 || k.rfind("fc_norm", 0) == 0) continue;
    ASSERT_TRUE(pre_map.count(k)) << k;
    EXPECT_TRUE(at::equal(t, pre_map.at(k))) << k;
    ++compared;
  }
  EXPECT_EQ(compared, 4 + 2 * 12);  // cls_token, pos_embed, patch_embed.proj.{weight,bias}; 2 blocks of 12
  Config bad = tiny_config(tmp.path(), "bad");
  bad.apply_overrides({"finetune.init=" + (tmp.path() / "nothing_here").string()});
  EXPECT_THROW(finetune(bad, quiet()), semaim::InputError);
}

TEST(Finetune, KnnOfAPretrainedAndARandomEncoder) {
  TempDir tmp;
  Config c = tiny_config(tmp.path(), "pre");
  pretrain_quietly(c);
  LinprobeOptions o;
  o.quiet = true;
  const KnnResult r = knn(c, o);
  ASSERT_EQ(r.ks, (std::vector<int64_t>{1, 5, 20}));
  EXPECT_EQ(r.n_train, 500);
  EXPECT_EQ(r.n_test, 200);
  for (size_t i = 0; i < r.ks.size(); ++i) {
    EXPECT_GT(r.top1[i], 30.0) << "k=" << r.ks[i];  // raw-pixel-like features already beat chance (10%)
    EXPECT_GE(r.top5[i], r.top1[i]);
  }
  EXPECT_TRUE(fs::exists(tmp.path() / "pre" / "knn.json"));
  o.random_init = true;
  const KnnResult rr = knn(c, o);
  EXPECT_TRUE(fs::exists(tmp.path() / "pre" / "knn_random.json"));
  double diff = 0;
  for (size_t i = 0; i < r.ks.size(); ++i) diff += std::abs(rr.top1[i] - r.top1[i]);
  EXPECT_GT(diff, 0.0);  // another encoder, other neighbours
  const auto j = nlohmann::json::parse(std::ifstream(tmp.path() / "pre" / "knn.json"));
  EXPECT_EQ(j["source"].get<std::string>(), (tmp.path() / "pre").string());
  EXPECT_DOUBLE_EQ(j["k"]["20"]["top1_percent"].get<double>(), r.top1[2]);
}

TEST(Finetune, ImageNetRecipesHoldTheReferenceValues) {
  const std::string dir = std::string(SEMAIM_SOURCE_DIR) + "/configs/finetune/";
  const Config b = Config::load(schema(), dir + "vit-base-p16_16xb64-100e_in1k.yaml", {});
  EXPECT_EQ(b.get_string("model.name"), "vit_base_patch16");
  EXPECT_EQ(b.get_int("finetune.epochs"), 100);
  EXPECT_EQ(b.get_int("finetune.batch_size") * 16, 1024);
  EXPECT_DOUBLE_EQ(b.get_float("finetune.base_lr"), 5e-4);
  EXPECT_DOUBLE_EQ(b.get_float("finetune.layer_decay"), 0.65);
  EXPECT_DOUBLE_EQ(b.get_float("finetune.warmup_epochs"), 20);
  EXPECT_DOUBLE_EQ(b.get_float("finetune.weight_decay"), 0.05);
  EXPECT_DOUBLE_EQ(b.get_float("finetune.drop_path"), 0.1);
  EXPECT_DOUBLE_EQ(b.get_float("data.reprob"), 0.25);
  EXPECT_DOUBLE_EQ(b.get_float("finetune.mixup"), 0.8);
  EXPECT_DOUBLE_EQ(b.get_float("finetune.cutmix"), 1.0);
  EXPECT_DOUBLE_EQ(b.get_float("finetune.smoothing"), 0.1);
  EXPECT_EQ(b.get_string("data.auto_augment"), "rand-m9-mstd0.5-inc1");
  EXPECT_DOUBLE_EQ(b.get_float("data.eval_crop_pct"), 0.875);
  const Config l = Config::load(schema(), dir + "vit-large-p16_16xb64-50e_in1k.yaml", {});
  EXPECT_EQ(l.get_string("model.name"), "vit_large_patch16");
  EXPECT_EQ(l.get_int("finetune.epochs"), 50);
  EXPECT_DOUBLE_EQ(l.get_float("finetune.layer_decay"), 0.75);
  EXPECT_DOUBLE_EQ(l.get_float("finetune.drop_path"), 0.2);
  EXPECT_DOUBLE_EQ(l.get_float("finetune.base_lr"), 5e-4);
}

TEST(Finetune, ReferenceLinearProbeTrainsOnlyTheHead) {
  TempDir tmp;
  Config c = tiny_config(tmp.path(), "pre");
  const PretrainResult pre = pretrain_quietly(c);
  c.apply_overrides({"linprobe.protocol=reference", "linprobe.optimizer=sgd", "linprobe.epochs=3",
                     "linprobe.batch_size=64", "linprobe.base_lr=0.4", "linprobe.pool=cls",
                     "linprobe.train_limit=1024", "linprobe.test_limit=300", "linprobe.feature_batch=100"});
  LinprobeOptions o;
  o.quiet = true;
  const auto r = linprobe(c, o);
  EXPECT_EQ(r.n_test, 300);
  EXPECT_GT(r.top1, 20.0);  // 10 classes
  // LARS (MAE's optimizer for this protocol) runs through the same task.
  c.apply_overrides({"linprobe.optimizer=lars", "linprobe.epochs=1", "run.name=pre_lars"});
  const auto pre_dir = (tmp.path() / "pre").string();
  o.checkpoint = pre_dir;
  linprobe(c, o);
  const auto j = nlohmann::json::parse(std::ifstream(tmp.path() / "pre_lars" / "linprobe.json"));
  EXPECT_EQ(j["protocol"].get<std::string>(), "reference");
  EXPECT_EQ(j["optimizer"].get<std::string>(), "lars");
  EXPECT_EQ(j["source"].get<std::string>(), pre_dir);
  // Each probe's checkpoints live under <run>/linprobe; their encoders are the pretrained one, untouched.
  const auto pre_w =
      semaim::io::load_safetensors(CheckpointManager::resolve(pre.last_checkpoint).weights).tensors;
  std::map<std::string, at::Tensor> pre_map(pre_w.begin(), pre_w.end());
  for (const char* run : {"pre", "pre_lars"}) {
    const auto ck = CheckpointManager((tmp.path() / run / "linprobe" / "checkpoints").string(), 2).latest();
    ASSERT_TRUE(ck.has_value()) << run;
    bool head_bn = false;
    for (const auto& [k, t] : semaim::io::load_safetensors(ck->weights).tensors) {
      if (k.rfind("head", 0) == 0) {
        head_bn = head_bn || k == "head_bn.running_mean";
        continue;
      }
      ASSERT_TRUE(pre_map.count(k)) << k;
      EXPECT_TRUE(at::equal(t, pre_map.at(k))) << run << " " << k;
    }
    EXPECT_TRUE(head_bn) << run;
  }
}

// Pretraining with feature targets (method.md §7, the reference's predict_feature): each kind trains, a
// resumed run equals an uninterrupted one bit for bit (the teacher re-read from its file), the prediction
// head takes the target's width, and inconsistent settings are refused before anything runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/engine/checkpointer.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/vit.h"
#include "semaim/models/weights.h"
#include "semaim/tasks/pretrain.h"
#include "semaim/tasks/schema.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::config::Config;
using semaim::engine::CheckpointManager;
using semaim::tasks::pretrain;
using semaim::tasks::PretrainOptions;
using semaim::tasks::PretrainResult;
using semaim::test::TempDir;

namespace {

// The Fashion-MNIST tiny model (7x7 grid of 4-pixel patches, width 32) with `kind` targets, stopping after
// max_steps optimizer steps.
Config feature_run(const fs::path& out, const std::string& name, const std::string& kind, int64_t max_steps) {
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
                     "pretrain.warmup_epochs=0.5",
                     "pretrain.base_lr=0.01",
                     "log.every_steps=1",
                     "log.progress=off",
                     "checkpoint.every_epochs=0",
                     "ordering.strategy=semantic",
                     "target.kind=" + kind,
                     "pretrain.max_steps=" + std::to_string(max_steps)});
  return c;
}

// A timm-named ViT teacher of another patch size, grid and width than the student (patch 2 on 16x16: grid 8,
// width 24, 3-channel), written with semaim's encoder, whose keys are timm's.
std::string write_teacher(const fs::path& dir) {
  semaim::models::VitConfig v;
  v.img_size = 16, v.patch_size = 2, v.in_chans = 3, v.embed_dim = 24, v.depth = 1, v.num_heads = 2;
  at::manual_seed(7);
  semaim::models::VitEncoder enc(v);
  const std::string path = (dir / "teacher.safetensors").string();
  semaim::io::save_safetensors(path, semaim::models::module_weights(*enc));
  return path;
}

PretrainOptions quiet(const std::string& resume = "") {
  PretrainOptions o;
  o.quiet = true;
  o.resume = resume;
  return o;
}

semaim::io::NamedTensors final_weights(const PretrainResult& r) {
  return semaim::io::load_safetensors(CheckpointManager::resolve(r.last_checkpoint).weights).tensors;
}

// Trains 4 steps straight and 2 + 2 with a resume; the final weights agree bit for bit. Returns the straight
// run.
PretrainResult expect_bitwise_resume(const fs::path& dir, const std::string& kind,
                                     const std::vector<std::string>& extra) {
  auto run = [&](const std::string& name, int64_t steps) {
    Config c = feature_run(dir, name, kind, steps);
    c.apply_overrides(extra);
    return c;
  };
  const PretrainResult a = pretrain(run("straight", 4), quiet());
  EXPECT_EQ(pretrain(run("split", 2), quiet()).steps, 2);
  const PretrainResult b = pretrain(run("split", 4), quiet("auto"));
  EXPECT_EQ(a.steps, 4);
  EXPECT_EQ(b.steps, 4);
  const auto wa = final_weights(a), wb = final_weights(b);
  EXPECT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size() && i < wb.size(); ++i) {
    EXPECT_EQ(wa[i].first, wb[i].first);
    EXPECT_TRUE(at::equal(wa[i].second, wb[i].second)) << kind << ": " << wa[i].first;
  }
  EXPECT_EQ(a.last_loss, b.last_loss) << kind;
  // 2 - 2 cos lies in [0, 4].
  EXPECT_GE(a.first_loss, 0.0);
  EXPECT_LE(a.first_loss, 4.0);
  return a;
}

int64_t head_width(const PretrainResult& r) {
  for (const auto& [k, t] : final_weights(r))
    if (k == "prediction_head.fc2.weight") return t.size(0);
  return -1;
}

}  // namespace

TEST(PretrainFeatureTargets, InferenceTargetsTrainAndResumeBitwise) {
  TempDir tmp;
  const auto r = expect_bitwise_resume(tmp.path(), "inference", {});
  EXPECT_EQ(head_width(r), 32);  // the encoder's width, as the reference's rec_dim = embed_dim
}

TEST(PretrainFeatureTargets, EmaTargetsTrainAndResumeBitwise) {
  TempDir tmp;
  const auto r = expect_bitwise_resume(tmp.path(), "ema", {"pretrain.ema=true", "pretrain.ema_decay=0.9"});
  EXPECT_EQ(head_width(r), 32);
}

TEST(PretrainFeatureTargets, TeacherTargetsOfAnotherGridAndWidthTrainAndResumeBitwise) {
  TempDir tmp;
  const std::string teacher = write_teacher(tmp.path());
  const auto r = expect_bitwise_resume(tmp.path(), "teacher", {"target.teacher_path=" + teacher});
  EXPECT_EQ(head_width(r), 24);  // the head predicts the teacher's width
  // The student's own ordering pass instead of the teacher's similarity: still trains.
  Config c = feature_run(tmp.path(), "own_order", "teacher", 2);
  c.apply_overrides({"target.teacher_path=" + teacher, "target.teacher_orders=false"});
  EXPECT_EQ(pretrain(c, quiet()).steps, 2);
}

TEST(PretrainFeatureTargets, InconsistentSettingsAreRefusedNamingTheKeys) {
  TempDir tmp;
  auto message = [&](const Config& c) -> std::string {
    try {
      pretrain(c, quiet());
    } catch (const semaim::InputError& e) {
      return e.what();
    }
    return "";
  };
  std::string msg = message(feature_run(tmp.path(), "a", "ema", 1));
  EXPECT_NE(msg.find("pretrain.ema"), std::string::npos) << msg;
  msg = message(feature_run(tmp.path(), "b", "teacher", 1));
  EXPECT_NE(msg.find("target.teacher_path"), std::string::npos) << msg;
  Config missing = feature_run(tmp.path(), "c", "teacher", 1);
  const std::string nope = (tmp.path() / "nope.safetensors").string();
  missing.apply_overrides({"target.teacher_path=" + nope});
  msg = message(missing);
  EXPECT_NE(msg.find(nope), std::string::npos) << msg;
}

TEST(PretrainFeatureTargets, TheClipTargetRecipeLoadsWithTheReferenceValues) {
  const Config c =
      Config::load(semaim::tasks::schema(),
                   std::string(SEMAIM_SOURCE_DIR) +
                       "/configs/pretrain/aim-base-p16_8xb256-semantic-clip-b16-target-800e_in1k.yaml");
  EXPECT_EQ(c.get_string("model.name"), "aim_base_patch16");
  EXPECT_EQ(c.get_string("target.kind"), "teacher");
  EXPECT_EQ(c.get_string("target.teacher_path"), "~/weights/clip-vit-b16.safetensors");
  EXPECT_EQ(c.get_string("target.teacher_format"), "open_clip");
  EXPECT_EQ(c.get_string("target.teacher_act"), "quick_gelu");
  EXPECT_EQ(c.get_int("target.teacher_width"), 768);
  EXPECT_EQ(c.get_int("target.teacher_heads"), 12);
  EXPECT_TRUE(c.get_bool("target.teacher_orders"));
  EXPECT_EQ(c.get_string("ordering.strategy"), "semantic");
  EXPECT_EQ(c.get_int("pretrain.epochs"), 800);
  EXPECT_EQ(c.get_float("pretrain.base_lr"), 0.0002);
}

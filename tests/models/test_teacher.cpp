// The frozen teacher of feature targets against open_clip and timm (tests/models/teacher_reference.py builds
// small random models and their token features), the reference's feature loss, and the teacher file's errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "python_suite.h"
#include "semaim/core/errors.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/aim.h"
#include "semaim/models/targets.h"
#include "semaim/models/teacher.h"

namespace fs = std::filesystem;
using semaim::InputError;
using semaim::models::Grid;
using semaim::models::Teacher;
using semaim::models::TeacherOptions;

namespace {

class TeacherRef : public semaim::test::PythonSuite<TeacherRef> {
 protected:
  static void SetUpTestSuite() {
    if (!have_python()) return;
    std::string missing;
    if (!run_script("models/teacher_reference.py", semaim::test::quoted(dir().string()), &missing))
      skip_reason_ = missing;
  }
  static at::Tensor expected(const std::string& key) {
    for (const auto& [k, t] : semaim::io::load_safetensors(file("expected.safetensors")).tensors)
      if (k == key) return t;
    ADD_FAILURE() << "no " << key << " in expected.safetensors";
    return {};
  }
};

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// `message` of the InputError `f` throws; empty when it throws none.
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_F(TeacherRef, OpenClipQuickGeluFeaturesEqualOpenClips) {
  Teacher t(file("clip_quick.safetensors"), {}, Grid{8, 8});
  EXPECT_EQ(t.arch().format, "open_clip");
  EXPECT_TRUE(t.arch().quick_gelu);
  EXPECT_EQ(t.out_dim(), 48);
  EXPECT_EQ(t.arch().heads, 1);  // width 64 / 64 by default; the file's model has 4
  TeacherOptions o;
  o.heads = 4;
  Teacher four(file("clip_quick.safetensors"), o, Grid{8, 8});
  const at::Tensor got = four.forward(expected("input")), want = expected("clip_quick.features");
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LT(max_diff(got, want), 1e-4);
  EXPECT_GT(max_diff(t.forward(expected("input")), want), 1e-3);  // the head count matters
}

TEST_F(TeacherRef, OpenClipGeluFeaturesNeedTheGeluActivation) {
  TeacherOptions o;
  o.heads = 4;
  o.act = "gelu";
  Teacher gelu(file("clip_gelu.safetensors"), o, Grid{8, 8});
  const at::Tensor want = expected("clip_gelu.features");
  EXPECT_LT(max_diff(gelu.forward(expected("input")), want), 1e-4);
  o.act = "auto";  // QuickGELU, the OpenAI CLIP activation: a different function
  Teacher quick(file("clip_gelu.safetensors"), o, Grid{8, 8});
  EXPECT_GT(max_diff(quick.forward(expected("input")), want), 1e-4);
}

TEST_F(TeacherRef, TimmFeaturesEqualTimmsForwardFeaturesAtTheFileAndAResampledGrid) {
  TeacherOptions o;
  o.heads = 4;
  Teacher t(file("timm.safetensors"), o, Grid{8, 8});
  EXPECT_EQ(t.arch().format, "timm");
  EXPECT_EQ(t.out_dim(), 64);
  EXPECT_LT(max_diff(t.forward(expected("input")), expected("timm.features")), 1e-4);
  Teacher small(file("timm.safetensors"), o, Grid{4, 4});
  EXPECT_LT(max_diff(small.forward(expected("input16")), expected("timm.features16")), 1e-4);
}

TEST_F(TeacherRef, InputsOfAnotherSizeOrOneChannelAreBroughtToTheTeachersGrid) {
  TeacherOptions o;
  o.heads = 4;
  Teacher t(file("timm.safetensors"), o, Grid{8, 8});
  const at::Tensor x = expected("input");
  EXPECT_EQ(t.forward(at::upsample_bicubic2d(x, {64, 64}, false)).sizes(), (std::vector<int64_t>{2, 65, 64}));
  const at::Tensor gray = x.narrow(1, 0, 1);
  EXPECT_TRUE(at::allclose(t.forward(gray), t.forward(gray.expand({-1, 3, -1, -1}))));
}

TEST_F(TeacherRef, OptionsThatDisagreeWithTheFileNameItAndTheFault) {
  const std::string f = file("clip_quick.safetensors");
  TeacherOptions o;
  o.depth = 3;
  std::string msg = input_error([&] { Teacher(f, o, Grid{8, 8}); });
  EXPECT_NE(msg.find(f), std::string::npos) << msg;
  EXPECT_NE(msg.find("depth"), std::string::npos) << msg;
  o = {};
  o.width = 128;
  msg = input_error([&] { Teacher(f, o, Grid{8, 8}); });
  EXPECT_NE(msg.find("width"), std::string::npos) << msg;
  o = {};
  o.format = "timm";
  msg = input_error([&] { Teacher(f, o, Grid{8, 8}); });
  EXPECT_NE(msg.find("open_clip"), std::string::npos) << msg;
  o = {};
  o.heads = 5;
  EXPECT_NE(input_error([&] { Teacher(f, o, Grid{8, 8}); }).find("heads"), std::string::npos);
}

TEST_F(TeacherRef, AClipTowerWithAnUnsupportedOrMisshapenKeyIsRefused) {
  auto w = semaim::io::load_safetensors(file("clip_quick.safetensors")).tensors;
  auto extra = w;
  extra.emplace_back("visual.transformer.resblocks.0.ls_1.gamma", at::ones({64}));
  semaim::io::save_safetensors(file("clip_extra.safetensors"), extra);
  std::string msg = input_error([&] { Teacher(file("clip_extra.safetensors"), {}, Grid{8, 8}); });
  EXPECT_NE(msg.find("ls_1.gamma"), std::string::npos) << msg;
  for (auto& [k, t] : w)
    if (k == "visual.transformer.resblocks.1.mlp.c_fc.bias") t = at::zeros({7});
  semaim::io::save_safetensors(file("clip_shape.safetensors"), w);
  msg = input_error([&] { Teacher(file("clip_shape.safetensors"), {}, Grid{8, 8}); });
  EXPECT_NE(msg.find("clip_shape.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("resblocks.1.mlp.c_fc.bias"), std::string::npos) << msg;
}

TEST(Teacher, AMissingFileOrAFileOfNeitherFormatIsAnInputErrorNamingIt) {
  semaim::test::TempDir tmp;
  const std::string missing = (tmp.path() / "nope.safetensors").string();
  std::string msg = input_error([&] { Teacher(missing, {}, Grid{2, 2}); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  const std::string other = (tmp.path() / "other.safetensors").string();
  semaim::io::save_safetensors(other, {{"encoder.weight", at::ones({2, 2})}});
  msg = input_error([&] { Teacher(other, {}, Grid{2, 2}); });
  EXPECT_NE(msg.find(other), std::string::npos) << msg;
  EXPECT_NE(msg.find("neither"), std::string::npos) << msg;
  EXPECT_NE(input_error([&] { Teacher("", {}, Grid{2, 2}); }).find("teacher_path"), std::string::npos);
  // A leading ~/ is the user's home, as in the recipe's placeholder path.
  msg = input_error([&] { Teacher("~/semaim-no-such-teacher.safetensors", {}, Grid{2, 2}); });
  EXPECT_NE(msg.find(std::string(std::getenv("HOME")) + "/semaim-no-such-teacher"), std::string::npos) << msg;
}

TEST(FeatureLoss, IsTwoMinusTwoCosineAveragedOverTokensAndScaleFree) {
  at::manual_seed(0);
  const at::Tensor p = at::randn({2, 5, 8}), t = at::randn({2, 5, 8});
  const at::Tensor cos = at::cosine_similarity(p, t, -1);
  EXPECT_NEAR(semaim::models::feature_loss(p, t).item<double>(), (2 - 2 * cos).mean().item<double>(), 1e-5);
  EXPECT_NEAR(semaim::models::feature_loss(3 * p, 0.5 * t).item<double>(),
              semaim::models::feature_loss(p, t).item<double>(), 1e-5);
  EXPECT_NEAR(semaim::models::feature_loss(p, p).item<double>(), 0.0, 1e-6);
  EXPECT_THROW(semaim::models::feature_loss(p, t.narrow(2, 0, 4)), InputError);
}

TEST(FeatureLoss, AimPredictsTheTargetWidthAndDropsTheTargetsClsToken) {
  semaim::models::AimConfig c;
  c.vit.img_size = 8, c.vit.patch_size = 4, c.vit.in_chans = 1, c.vit.embed_dim = 16, c.vit.depth = 2;
  c.vit.num_heads = 2, c.decoder_depth = 2, c.target_dim = 12;
  at::manual_seed(0);
  semaim::models::AimVit m(c);
  const at::Tensor imgs = at::randn({2, 1, 8, 8});
  auto [order, inverse] = semaim::models::order_from_keys(at::rand({2, 4}));
  const at::Tensor target = at::randn({2, 5, 12});
  const at::Tensor pred = m->forward_ordered(imgs, inverse.to(at::kFloat), order, inverse);
  ASSERT_EQ(pred.sizes(), (std::vector<int64_t>{2, 4, 12}));
  const at::Tensor loss = m->forward_feature_loss_ordered(imgs, order, inverse, target);
  EXPECT_NEAR(loss.item<double>(), semaim::models::feature_loss(pred, target.narrow(1, 1, 4)).item<double>(),
              1e-6);
  EXPECT_THROW(m->forward_feature_loss_ordered(imgs, order, inverse, target.narrow(1, 1, 4)), InputError);
  loss.backward();
  EXPECT_TRUE(m->named_parameters()["prediction_head.fc2.weight"].grad().defined());
}

// Loading weights by key name across tasks: the report of missing / unexpected / resampled / mismatched keys,
// the position table resampled to the target grid, and strict mode's errors naming the file and the keys.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

#include <functional>
#include <string>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/aim.h"
#include "semaim/models/layers.h"
#include "semaim/models/registry.h"
#include "semaim/models/vit.h"
#include "semaim/models/weights.h"
#include "temp_dir.h"

namespace {

namespace m = semaim::models;
using semaim::io::NamedTensors;

m::VitConfig small(int64_t h, int64_t w) {
  return {.img_size = 32, .patch_size = 8, .in_chans = 3, .embed_dim = 32, .depth = 2, .num_heads = 2,
          .img_h = h, .img_w = w};
}

at::Tensor get(const NamedTensors& w, const std::string& key) {
  for (const auto& [k, t] : w)
    if (k == key) return t;
  ADD_FAILURE() << "no " << key;
  return {};
}

// Source: a 4x4-grid encoder's weights without norm.weight, with a wrongly shaped fc1 bias and two keys of
// other tasks.
NamedTensors faulty_checkpoint(const m::VitEncoder& src) {
  NamedTensors w;
  for (auto& [k, t] : m::module_weights(*src)) {
    if (k == "norm.weight") continue;
    w.emplace_back(k, k == "blocks.0.mlp.fc1.bias" ? at::zeros({7}) : t.clone());
  }
  w.emplace_back("decoder.extra", at::ones({3}));
  w.emplace_back("head.weight", at::ones({10, 32}));
  return w;
}

TEST(LoadWeights, NonStrictLoadsWhatMatchesAndReportsTheRest) {
  at::manual_seed(1);
  m::VitEncoder src(small(32, 32));
  m::VitEncoder dst(small(48, 40));  // a 6x5 grid
  const auto before = m::module_weights(*dst);
  const auto before_norm = get(before, "norm.weight").clone(),
             before_fc1 = get(before, "blocks.0.mlp.fc1.bias").clone();
  auto report = m::load_weights(*dst, faulty_checkpoint(src),
                                {.where = "ckpt.safetensors", .strict = false, .resample_pos_embed = true});
  EXPECT_EQ(report.missing, std::vector<std::string>{"norm.weight"});
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"decoder.extra", "head.weight"}));
  EXPECT_EQ(report.resampled, std::vector<std::string>{"pos_embed"});
  ASSERT_EQ(report.shape_mismatch.size(), 1u);
  EXPECT_EQ(report.shape_mismatch[0].key, "blocks.0.mlp.fc1.bias");
  EXPECT_EQ(report.shape_mismatch[0].source, std::vector<int64_t>{7});
  EXPECT_EQ(report.shape_mismatch[0].target, std::vector<int64_t>{128});
  EXPECT_FALSE(report.clean());
  EXPECT_NE(report.summary().find("1 missing ('norm.weight')"), std::string::npos) << report.summary();

  const auto after = m::module_weights(*dst);
  for (const auto& [k, t] : m::module_weights(*src)) {
    if (k == "norm.weight" || k == "blocks.0.mlp.fc1.bias" || k == "pos_embed") continue;
    EXPECT_TRUE(at::equal(get(after, k), t)) << k;
  }
  // The table went through timm's resampling to the target's non-square grid, read from its config.
  EXPECT_TRUE(
      at::equal(get(after, "pos_embed"), m::resample_abs_pos_embed(src->pos_embed(), {6, 5}, {4, 4})));
  EXPECT_TRUE(at::equal(get(after, "norm.weight"), before_norm));  // missing: left as it was
  EXPECT_TRUE(at::equal(get(after, "blocks.0.mlp.fc1.bias"), before_fc1));
}

// A fine-tuning model: the encoder under `backbone`, a classifier head the checkpoint does not have.
class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const m::VitConfig& c) {
    backbone = register_module("backbone", m::VitEncoder(c));
    head = register_module("head", torch::nn::Linear(c.embed_dim, 10));
  }
  m::VitEncoder backbone{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(Classifier);

TEST(LoadWeights, NestedEncoderTableIsResampledToItsGridAndTheHeadReportedMissing) {
  at::manual_seed(2);
  m::VitEncoder src(small(32, 32));
  Classifier model(small(48, 40));
  NamedTensors w;
  for (auto& [k, t] : m::module_weights(*src)) w.emplace_back("backbone." + k, t);
  auto report = m::load_weights(*model, w, {.strict = false, .resample_pos_embed = true});
  EXPECT_EQ(report.missing, (std::vector<std::string>{"head.weight", "head.bias"}));
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_EQ(report.resampled, std::vector<std::string>{"backbone.pos_embed"});
  EXPECT_TRUE(
      at::equal(model->backbone->pos_embed(), m::resample_abs_pos_embed(src->pos_embed(), {6, 5}, {4, 4})));
  // A source grid given explicitly overrides the square assumption.
  m::VitEncoder wide(small(16, 64));  // 2x8 grid: not a square
  NamedTensors ww;
  for (auto& [k, t] : m::module_weights(*wide)) ww.emplace_back("backbone." + k, t);
  auto guessed = m::load_weights(*model, ww, {.strict = false, .resample_pos_embed = true});
  EXPECT_EQ(guessed.shape_mismatch.size(), 0u);  // 16 tokens pass for a 4x4 square...
  auto told = m::load_weights(*model, ww,
                              {.strict = false, .resample_pos_embed = true, .source_grid = m::Grid{2, 8}});
  EXPECT_EQ(told.resampled, std::vector<std::string>{"backbone.pos_embed"});
  EXPECT_TRUE(
      at::equal(model->backbone->pos_embed(),
                m::resample_abs_pos_embed(wide->pos_embed(), {6, 5}, {2, 8})));  // ...but 2x8 is right
}

TEST(LoadWeights, PretrainingCheckpointLoadsIntoTheEncoderWithDecoderKeysUnexpected) {
  at::manual_seed(3);
  m::AimVit aim(m::aim_config_by_name("aim_fmnist_patch4"));
  m::VitEncoder enc(m::vit_config_by_name("vit_fmnist_patch4"));
  auto report = m::load_weights(*enc, m::module_weights(*aim), {.strict = false});
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.shape_mismatch.empty());
  EXPECT_TRUE(report.resampled.empty());
  ASSERT_FALSE(report.unexpected.empty());
  for (const auto& k : report.unexpected)
    EXPECT_TRUE(k.rfind("query_blocks.", 0) == 0 || k.rfind("prediction_head.", 0) == 0) << k;
  at::NoGradGuard ng;
  auto x = at::randn({2, 1, 28, 28});
  EXPECT_TRUE(at::equal(enc->forward_features(x), aim->encode(x)));
}

void expect_input_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no InputError";
  } catch (const semaim::InputError& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(LoadWeights, StrictFaultsNameTheFileAndTheKeysAndCopyNothing) {
  at::manual_seed(4);
  m::VitEncoder src(small(32, 32));
  m::VitEncoder dst(small(32, 32));
  const auto before = get(m::module_weights(*dst), "cls_token").clone();
  const auto ckpt = faulty_checkpoint(src);
  expect_input_error(
      [&] { m::load_weights(*dst, ckpt, {.where = "run/step-9.weights.safetensors"}); },
      {"run/step-9.weights.safetensors", "missing weight 'norm.weight'", "'blocks.0.mlp.fc1.bias'", "[7]",
       "[128]", "unexpected weight 'decoder.extra', 'head.weight'"});
  EXPECT_TRUE(at::equal(dst->cls_token(), before)) << "a failed strict load copied weights";
  // Extra keys alone: an error unless allowed.
  NamedTensors extra = m::module_weights(*src);
  extra.emplace_back("query_blocks.0.norm1.weight", at::ones({32}));
  expect_input_error([&] { m::load_weights(*dst, extra, {.where = "a.safetensors"}); },
                     {"a.safetensors", "'query_blocks.0.norm1.weight'"});
  auto report = m::load_weights(*dst, extra, {.where = "a.safetensors", .allow_extra = true});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"query_blocks.0.norm1.weight"});
  EXPECT_TRUE(at::equal(dst->cls_token(), src->cls_token()));
  // A table of another grid is a shape fault in strict mode unless resampling is asked for.
  m::VitEncoder big(small(48, 40));
  expect_input_error([&] { m::load_weights(*big, m::module_weights(*src), {.where = "b.safetensors"}); },
                     {"b.safetensors", "'pos_embed'"});
  auto resampled = m::load_weights(*big, m::module_weights(*src), {.resample_pos_embed = true});
  EXPECT_EQ(resampled.resampled, std::vector<std::string>{"pos_embed"});
  EXPECT_TRUE(resampled.clean());
}

TEST(LoadWeights, ModuleWeightsRoundTripThroughSafetensorsStrictly) {
  at::manual_seed(5);
  m::VitEncoder a(small(32, 32)), b(small(32, 32));
  auto w = m::module_weights(*a);
  ASSERT_GE(w.size(), 3u);
  EXPECT_EQ(w.front().first, "cls_token");  // timm's state_dict order
  EXPECT_EQ(w[1].first, "pos_embed");
  EXPECT_EQ(w.back().first, "norm.bias");
  const semaim::test::TempDir tmp;
  const std::string path = tmp.file("roundtrip.safetensors");
  semaim::io::save_safetensors(path, w);
  auto report = m::load_weights(*b, semaim::io::load_safetensors(path).tensors, {.where = path});
  EXPECT_TRUE(report.clean()) << report.summary();
  at::NoGradGuard ng;
  a->eval();
  b->eval();
  auto x = at::randn({2, 3, 32, 32});
  EXPECT_TRUE(at::equal(a->forward_features(x), b->forward_features(x)));
}

}  // namespace

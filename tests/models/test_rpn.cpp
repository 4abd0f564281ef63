// ViTDet's RPN: detectron2's key names, the losses on a case with a known answer, and find_top_rpn_proposals'
// per-level top-k, clipping, small-box removal, NMS by level and ordering.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "semaim/core/errors.h"
#include "semaim/models/heads/rpn.h"

namespace {
using semaim::models::Rpn;
using semaim::models::RpnConfig;
namespace det = semaim::models::det;

RpnConfig tiny() {
  RpnConfig c;
  c.in_channels = 8;
  return c;
}

// p2..p6 of a 64 x 64 batch of n images.
std::vector<at::Tensor> pyramid(int64_t n, int64_t channels) {
  std::vector<at::Tensor> f;
  for (int64_t s : {16, 8, 4, 2, 1}) f.push_back(at::randn({n, channels, s, s}));
  return f;
}

TEST(Rpn, ParameterNamesFollowDetectron2) {
  Rpn rpn(RpnConfig{});
  std::set<std::string> keys;
  for (const auto& p : rpn->named_parameters()) keys.insert(p.key());
  const std::set<std::string> expect{"rpn_head.conv.conv0.weight",        "rpn_head.conv.conv0.bias",
                                     "rpn_head.conv.conv1.weight",        "rpn_head.conv.conv1.bias",
                                     "rpn_head.objectness_logits.weight", "rpn_head.objectness_logits.bias",
                                     "rpn_head.anchor_deltas.weight",     "rpn_head.anchor_deltas.bias"};
  EXPECT_EQ(keys, expect);
  EXPECT_EQ(rpn->rpn_head->objectness_logits->weight.size(0), 3);
  EXPECT_EQ(rpn->rpn_head->anchor_deltas->weight.size(0), 12);
  EXPECT_NEAR(rpn->rpn_head->conv[0]->as<torch::nn::Conv2d>()->weight.std().item<float>(), 0.01, 2e-4);
}

TEST(Rpn, ConfigRejectsMismatchedLevels) {
  RpnConfig c;
  c.anchor_sizes = {32, 64};
  EXPECT_THROW(c.validate(), semaim::InputError);
  c = RpnConfig{};
  c.iou_labels = {0, 1};
  EXPECT_THROW(c.validate(), semaim::InputError);
}

TEST(Rpn, AllBackgroundLossIsSoftplusOfTheBias) {
  at::manual_seed(0);
  Rpn rpn(tiny());
  rpn->train();
  // Constant objectness logit b: every sampled anchor is a negative (no ground truth), so the BCE per anchor
  // is softplus(b), 256 of them per image, divided by 256 per image; no positives, so no box loss.
  const double b = 0.7;
  torch::NoGradGuard ng;
  rpn->rpn_head->objectness_logits->weight.zero_();
  rpn->rpn_head->objectness_logits->bias.fill_(b);
  std::vector<det::ImageTargets> t(2);
  for (auto& ti : t) ti.boxes = at::zeros({0, 4}), ti.classes = at::zeros({0}, at::kLong);
  const auto out = rpn->forward(pyramid(2, 8), {{64, 64}, {64, 48}}, &t);
  ASSERT_EQ(out.losses.size(), 2u);
  EXPECT_NEAR(out.losses.at("loss_rpn_cls").item<double>(), std::log1p(std::exp(b)), 1e-5);
  EXPECT_EQ(out.losses.at("loss_rpn_loc").item<double>(), 0.0);
  ASSERT_EQ(out.proposals.size(), 2u);
}

TEST(Rpn, PositiveAnchorsGiveLocLossAndGradients) {
  at::manual_seed(1);
  Rpn rpn(tiny());
  rpn->train();
  std::vector<det::ImageTargets> t(1);
  t[0].boxes = at::tensor({8.f, 8.f, 40.f, 40.f}).view({1, 4});
  t[0].classes = at::zeros({1}, at::kLong);
  const auto out = rpn->forward(pyramid(1, 8), {{64, 64}}, &t);
  const at::Tensor total = out.losses.at("loss_rpn_cls") + out.losses.at("loss_rpn_loc");
  EXPECT_GT(out.losses.at("loss_rpn_loc").item<double>(), 0.0);
  total.backward();
  EXPECT_GT(rpn->rpn_head->anchor_deltas->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(out.proposals[0].requires_grad());
}

TEST(Rpn, InferenceProposalsAreClippedAndBounded) {
  at::manual_seed(2);
  RpnConfig c = tiny();
  c.post_nms_topk_test = 50;
  Rpn rpn(c);
  rpn->eval();
  torch::NoGradGuard ng;
  const auto out = rpn->forward(pyramid(2, 8), {{64, 64}, {40, 56}}, nullptr);
  EXPECT_TRUE(out.losses.empty());
  ASSERT_EQ(out.proposals.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const at::Tensor p = out.proposals[i];
    ASSERT_EQ(p.dim(), 2);
    EXPECT_EQ(p.size(1), 4);
    EXPECT_GT(p.size(0), 0);
    EXPECT_LE(p.size(0), 50);
    EXPECT_GE(p.min().item<float>(), 0.f);
  }
  EXPECT_LE(out.proposals[1].select(1, 2).max().item<float>(), 56.f);
  EXPECT_LE(out.proposals[1].select(1, 3).max().item<float>(), 40.f);
}

TEST(FindTopRpnProposals, TopKPerLevelNmsByLevelAndScoreOrder) {
  // Level 0: A (score 5), A' overlapping A (score 4), a degenerate box (score 9), a far box (score 1, beyond
  // pre-NMS top-3). Level 1: the same box as A (score 3) survives: NMS runs within each level only.
  const at::Tensor l0 = at::tensor(std::vector<float>{0, 0, 10, 10, 0, 0, 10, 11, 5, 5, 5, 9, 30, 30, 40, 40}).view({1, 4, 4});
  const at::Tensor s0 = at::tensor({5.f, 4.f, 9.f, 1.f}).view({1, 4});
  const at::Tensor l1 = at::tensor(std::vector<float>{0, 0, 10, 10, 20, 20, 90, 90}).view({1, 2, 4});
  const at::Tensor s1 = at::tensor({3.f, 6.f}).view({1, 2});
  const auto out = semaim::models::find_top_rpn_proposals({l0, l1}, {s0, s1}, {{50, 60}}, 0.7, 3, 10, 0.0, false);
  ASSERT_EQ(out.size(), 1u);
  // Kept: the clipped (20, 20, 60, 50) at 6, A at 5, A on level 1 at 3; by decreasing score.
  const at::Tensor expect = at::tensor(std::vector<float>{20, 20, 60, 50, 0, 0, 10, 10, 0, 0, 10, 10}).view({3, 4});
  EXPECT_TRUE(at::equal(out[0], expect)) << out[0];
  const auto top2 = semaim::models::find_top_rpn_proposals({l0, l1}, {s0, s1}, {{50, 60}}, 0.7, 3, 2, 0.0, false);
  EXPECT_EQ(top2[0].size(0), 2);
  // Non-finite scores: dropped at inference, an error in training.
  const at::Tensor bad = at::tensor({NAN, 4.f, 9.f, 1.f}).view({1, 4});
  EXPECT_EQ(semaim::models::find_top_rpn_proposals({l0}, {bad}, {{50, 60}}, 0.7, 4, 10, 0.0, false)[0].size(0), 2);
  EXPECT_THROW(semaim::models::find_top_rpn_proposals({l0}, {bad}, {{50, 60}}, 0.7, 4, 10, 0.0, true),
               semaim::RuntimeFailure);
}

}  // namespace

// The engine's optimizers against torch::optim (AdamW fused multi-tensor, SGD with momentum / Nesterov),
// parameter groups by rule (weight decay, MAE's layer-wise lr decay), the lr schedules and clipping.
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <torch/optim/sgd.h>

#include <cmath>

#include <functional>
#include <map>
#include <memory>

#include "semaim/core/errors.h"
#include "semaim/core/lr_schedule.h"
#include "semaim/engine/optimizer.h"

using namespace semaim::engine;
using semaim::core::lr_at;
using semaim::core::LrSchedule;

namespace {

std::vector<ParamGroup> groups_of(const NamedParams& params, double wd = 0.05) {
  GroupRule rule;
  rule.weight_decay = wd;
  return make_param_groups(params, rule);
}

LrSchedule cosine(double lr, double min_lr, double warmup, double total) {
  LrSchedule s;
  s.base_lr = lr;
  s.min_lr = min_lr;
  s.warmup = warmup;
  s.total = total;
  return s;
}

// Three steps of optimizer a, its state loaded into a fresh optimizer b on a copy of the parameter, then one
// more step of each: both must land on the same bits. Returns b's step count.
int64_t expect_state_round_trip_continues(const std::function<std::unique_ptr<Optimizer>(at::Tensor)>& make) {
  auto p1 = torch::randn({3, 3}).requires_grad_();
  auto p2 = p1.detach().clone().requires_grad_();
  auto a = make(p1);
  for (int i = 0; i < 3; ++i) {
    a->zero_grad();
    p1.pow(3).sum().backward();
    a->step();
  }
  auto b = make(p2);
  {
    torch::NoGradGuard ng;
    p2.copy_(p1);
  }
  semaim::io::NamedTensors st;
  for (auto& [k, t] : a->state()) st.emplace_back(k, t.clone());
  b->load_state(st, "test");
  for (auto* opt : {a.get(), b.get()}) {
    auto& p = opt == a.get() ? p1 : p2;
    opt->zero_grad();
    p.pow(3).sum().backward();
    opt->step();
  }
  EXPECT_TRUE(torch::equal(p1, p2));
  return b->steps_taken();
}

}  // namespace

TEST(AdamW, MatchesTorchAdamWWithDecayOnlyOnMatricesAndNotBiases) {
  torch::manual_seed(0);
  auto w = torch::randn({5, 4}, torch::requires_grad());
  auto b = torch::randn({5}, torch::requires_grad());
  auto w2 = w.detach().clone().requires_grad_();
  auto b2 = b.detach().clone().requires_grad_();
  AdamW ours(groups_of({{"fc.weight", w}, {"fc.bias", b}}), AdamWOptions{0.9, 0.95, 1e-8});
  ours.set_lr(0.01);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{w2},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.05)));
  groups.emplace_back(std::vector<at::Tensor>{b2},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.0)));
  torch::optim::AdamW ref(groups, torch::optim::AdamWOptions(0.01));
  auto x = torch::randn({8, 4});
  for (int it = 0; it < 5; ++it) {
    ours.zero_grad();
    ref.zero_grad();
    (torch::matmul(x, w.t()) + b).pow(2).sum().backward();
    (torch::matmul(x, w2.t()) + b2).pow(2).sum().backward();
    ours.step();
    ref.step();
  }
  EXPECT_TRUE(torch::allclose(w, w2, 1e-5, 1e-6)) << (w - w2).abs().max();
  EXPECT_TRUE(torch::allclose(b, b2, 1e-5, 1e-6)) << (b - b2).abs().max();
  EXPECT_EQ(ours.steps_taken(), 5);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  torch::manual_seed(1);
  const auto b_steps = expect_state_round_trip_continues([](at::Tensor p) {
    auto opt = std::make_unique<AdamW>(groups_of({{"w", p}}), AdamWOptions{});
    opt->set_lr(1e-3);
    return opt;
  });
  EXPECT_EQ(b_steps, 4);
}

TEST(AdamW, LoadStateRejectsMissingAndMisshapenTensors) {
  auto p = torch::zeros({2, 2}, torch::requires_grad());
  AdamW a(groups_of({{"w", p}}), AdamWOptions{});
  EXPECT_THROW(a.load_state({}, "ckpt"), semaim::InputError);
  semaim::io::NamedTensors bad{{"exp_avg.w", torch::zeros({3})}};
  try {
    a.load_state(bad, "ckpt.state");
    FAIL();
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("exp_avg.w"), std::string::npos);
  }
}

TEST(Decay, BiasesAndOneDimensionalParametersAreNotDecayed) {
  EXPECT_TRUE(decays("blocks.0.attn.qkv.weight", torch::zeros({6, 2})));
  EXPECT_FALSE(decays("blocks.0.attn.qkv.bias", torch::zeros({6})));
  EXPECT_FALSE(decays("blocks.0.norm1.weight", torch::zeros({6})));
  EXPECT_TRUE(decays("cls_token", torch::zeros({1, 1, 6})));
}

TEST(LrSchedule, LinearWarmupThenHalfCosineToMin) {
  EXPECT_DOUBLE_EQ(lr_at(cosine(1.0, 0.0, 2.0, 10.0), 0.0), 0.0);
  EXPECT_DOUBLE_EQ(lr_at(cosine(1.0, 0.0, 2.0, 10.0), 1.0), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(cosine(1.0, 0.0, 2.0, 10.0), 2.0), 1.0);
  EXPECT_NEAR(lr_at(cosine(1.0, 0.1, 2.0, 10.0), 6.0), 0.1 + 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(lr_at(cosine(1.0, 0.1, 2.0, 10.0), 10.0), 0.1, 1e-12);
  EXPECT_NEAR(lr_at(cosine(1.0, 0.1, 2.0, 10.0), 12.0), 0.1, 1e-12);  // clamped after the end
  EXPECT_DOUBLE_EQ(lr_at(cosine(1.0, 0.0, 0.0, 10.0), 3.0), 0.5 * (1 + std::cos(M_PI * 0.3)));
}

TEST(LrSchedule, PolyDecaysToMinWithPowerAfterWarmup) {
  LrSchedule s = cosine(1.0, 0.0, 10.0, 110.0);
  s.kind = LrSchedule::Kind::kPoly;
  s.power = 2.0;
  EXPECT_DOUBLE_EQ(lr_at(s, 5.0), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(s, 10.0), 1.0);
  EXPECT_NEAR(lr_at(s, 60.0), 0.25, 1e-12);
  EXPECT_NEAR(lr_at(s, 110.0), 0.0, 1e-12);
  s.power = 1.0;
  s.min_lr = 1e-4;
  EXPECT_NEAR(lr_at(s, 60.0), 1e-4 + (1.0 - 1e-4) * 0.5, 1e-12);
}

TEST(LrSchedule, StepMultipliesByGammaAtEachMilestone) {
  LrSchedule s = cosine(0.1, 0.0, 0.0, 90.0);
  s.kind = LrSchedule::Kind::kStep;
  s.milestones = {30, 60};
  s.gamma = 0.1;
  EXPECT_DOUBLE_EQ(lr_at(s, 29.9), 0.1);
  EXPECT_NEAR(lr_at(s, 30.0), 0.01, 1e-15);
  EXPECT_NEAR(lr_at(s, 75.0), 0.001, 1e-15);
  EXPECT_EQ(semaim::core::parse_lr_kind("poly", "x"), LrSchedule::Kind::kPoly);
  EXPECT_THROW(semaim::core::parse_lr_kind("linear", "cfg.yaml"), semaim::InputError);
}

TEST(ParamGroups, WithoutLayerDecayDecayedGroupFirstThenTheRestInModelOrder) {
  auto w = torch::zeros({2, 2}, torch::requires_grad());
  auto b = torch::zeros({2}, torch::requires_grad());
  auto frozen = torch::zeros({2, 2});
  auto cls = torch::zeros({1, 1, 2}, torch::requires_grad());
  GroupRule rule;
  rule.weight_decay = 0.05;
  auto g = make_param_groups({{"fc.bias", b}, {"fc.weight", w}, {"pos", frozen}, {"cls_token", cls}}, rule);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].name, "decay");
  EXPECT_DOUBLE_EQ(g[0].weight_decay, 0.05);
  ASSERT_EQ(g[0].params.size(), 2u);
  EXPECT_EQ(g[0].params[0].first, "fc.weight");
  EXPECT_EQ(g[0].params[1].first, "cls_token");
  EXPECT_EQ(g[1].name, "no_decay");
  EXPECT_DOUBLE_EQ(g[1].weight_decay, 0.0);
  ASSERT_EQ(g[1].params.size(), 1u);
  rule.no_decay_names = {"cls_token"};
  g = make_param_groups({{"fc.weight", w}, {"cls_token", cls}}, rule);
  EXPECT_EQ(g[1].params[0].first, "cls_token");
}

TEST(ParamGroups, LayerDecayScalesAsMaeAssignsLayerIds) {
  const int64_t depth = 2;
  EXPECT_EQ(vit_layer_id("cls_token", depth), 0);
  EXPECT_EQ(vit_layer_id("pos_embed", depth), 0);
  EXPECT_EQ(vit_layer_id("patch_embed.proj.weight", depth), 0);
  EXPECT_EQ(vit_layer_id("blocks.0.attn.qkv.weight", depth), 1);
  EXPECT_EQ(vit_layer_id("blocks.1.mlp.fc2.bias", depth), 2);
  EXPECT_EQ(vit_layer_id("fc_norm.weight", depth), 3);
  EXPECT_EQ(vit_layer_id("head.weight", depth), 3);
  GroupRule rule;
  rule.weight_decay = 0.05;
  rule.layer_decay = 0.5;
  rule.num_layers = depth + 2;
  rule.layer_id = [&](const std::string& n) { return vit_layer_id(n, depth); };
  rule.no_decay_names = {"cls_token", "pos_embed"};
  auto t = [](std::vector<int64_t> shape) { return torch::zeros(shape, torch::requires_grad()); };
  auto g = make_param_groups({{"cls_token", t({1, 1, 4})},
                              {"patch_embed.proj.weight", t({4, 3, 2, 2})},
                              {"blocks.0.attn.qkv.weight", t({12, 4})},
                              {"blocks.1.norm1.weight", t({4})},
                              {"head.weight", t({10, 4})},
                              {"head.bias", t({10})}},
                             rule);
  std::map<std::string, std::pair<double, double>> seen;  // name -> (lr_scale, weight_decay)
  for (const auto& grp : g) seen[grp.name] = {grp.lr_scale, grp.weight_decay};
  EXPECT_DOUBLE_EQ(seen.at("layer_0_no_decay").first, 0.125);  // 0.5^(4-1-0)
  EXPECT_DOUBLE_EQ(seen.at("layer_0_decay").first, 0.125);
  EXPECT_DOUBLE_EQ(seen.at("layer_1_decay").first, 0.25);
  EXPECT_DOUBLE_EQ(seen.at("layer_2_no_decay").first, 0.5);
  EXPECT_DOUBLE_EQ(seen.at("layer_3_decay").first, 1.0);
  EXPECT_DOUBLE_EQ(seen.at("layer_3_no_decay").second, 0.0);
  EXPECT_DOUBLE_EQ(seen.at("layer_3_decay").second, 0.05);
}

TEST(ParamGroups, EachGroupStepsWithItsOwnLrScale) {
  // Two identical parameters, one at scale 0.5: with plain SGD (no momentum) the update halves.
  auto a = torch::ones({2, 2}, torch::requires_grad());
  auto b = torch::ones({2, 2}, torch::requires_grad());
  std::vector<ParamGroup> groups{{"full", 0.0, 1.0, {{"a", a}}}, {"half", 0.0, 0.5, {{"b", b}}}};
  Sgd opt(std::move(groups), SgdOptions{});
  opt.set_lr(0.1);
  (a.sum() + b.sum()).backward();
  opt.step();
  EXPECT_TRUE(torch::allclose(a, torch::full({2, 2}, 0.9)));
  EXPECT_TRUE(torch::allclose(b, torch::full({2, 2}, 0.95)));
}

TEST(Sgd, MatchesTorchSgdWithMomentumNesterovAndWeightDecay) {
  for (bool nesterov : {false, true}) {
    torch::manual_seed(3);
    auto w = torch::randn({5, 4}, torch::requires_grad());
    auto b = torch::randn({5}, torch::requires_grad());
    auto w2 = w.detach().clone().requires_grad_();
    auto b2 = b.detach().clone().requires_grad_();
    Sgd ours(groups_of({{"fc.weight", w}, {"fc.bias", b}}, 1e-3), SgdOptions{0.9, 0.0, nesterov});
    ours.set_lr(0.05);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    auto opts = [&](double wd) {
      return std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(0.05).momentum(0.9).nesterov(nesterov).weight_decay(wd));
    };
    groups.emplace_back(std::vector<at::Tensor>{w2}, opts(1e-3));
    groups.emplace_back(std::vector<at::Tensor>{b2}, opts(0.0));
    torch::optim::SGD ref(groups, torch::optim::SGDOptions(0.05));
    auto x = torch::randn({8, 4});
    for (int it = 0; it < 4; ++it) {
      ours.zero_grad();
      ref.zero_grad();
      (torch::matmul(x, w.t()) + b).pow(2).mean().backward();
      (torch::matmul(x, w2.t()) + b2).pow(2).mean().backward();
      ours.step();
      ref.step();
    }
    EXPECT_TRUE(torch::allclose(w, w2, 1e-5, 1e-6)) << nesterov << " " << (w - w2).abs().max();
    EXPECT_TRUE(torch::allclose(b, b2, 1e-5, 1e-6)) << nesterov << " " << (b - b2).abs().max();
  }
}

TEST(Sgd, StateRoundTripContinuesIdenticallyAndNesterovNeedsMomentum) {
  torch::manual_seed(2);
  expect_state_round_trip_continues([](at::Tensor p) {
    auto opt = std::make_unique<Sgd>(groups_of({{"w", p}}), SgdOptions{0.9});
    opt->set_lr(0.01);
    return opt;
  });
  auto p = torch::zeros({2, 2}, torch::requires_grad());
  EXPECT_THROW(Sgd(groups_of({{"w", p}}), SgdOptions{0.0, 0.0, true}), semaim::InputError);
}

TEST(ClipGradNorm, ReturnsTotalNormAndScalesDownToMax) {
  auto a = torch::zeros({2}, torch::requires_grad());
  auto b = torch::zeros({1}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  EXPECT_NEAR(clip_grad_norm({a, b}, 10.0), 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<float>(), 3.0f, 1e-6);
  EXPECT_NEAR(clip_grad_norm({a, b}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(torch::cat({a.grad(), b.grad()}).norm().item<double>(), 1.0, 1e-5);
}

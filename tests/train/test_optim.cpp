// AdamW (fused multi-tensor) against torch::optim::AdamW, parameter grouping, the lr schedule and clipping.
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <cmath>

#include "semaim/config/errors.h"
#include "semaim/train/optim.h"

using namespace semaim::train;

TEST(AdamW, MatchesTorchAdamWWithDecayOnlyOnMatricesAndNotBiases) {
  torch::manual_seed(0);
  auto w = torch::randn({5, 4}, torch::requires_grad());
  auto b = torch::randn({5}, torch::requires_grad());
  auto w2 = w.detach().clone().requires_grad_();
  auto b2 = b.detach().clone().requires_grad_();
  AdamW ours({{"fc.weight", w}, {"fc.bias", b}}, AdamWConfig{0.01, 0.9, 0.95, 1e-8, 0.05});
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
  auto make = [] { return torch::randn({3, 3}).requires_grad_(); };
  auto p1 = make();
  auto p2 = p1.detach().clone().requires_grad_();
  AdamW a({{"w", p1}}, AdamWConfig{});
  for (int i = 0; i < 3; ++i) {
    a.zero_grad();
    p1.pow(3).sum().backward();
    a.step();
  }
  AdamW b({{"w", p2}}, AdamWConfig{});
  {
    torch::NoGradGuard ng;
    p2.copy_(p1);
  }
  semaim::io::NamedTensors st;
  for (auto& [k, t] : a.state()) st.emplace_back(k, t.clone());
  b.load_state(st, "test");
  for (auto* opt : {&a, &b}) {
    auto& p = opt == &a ? p1 : p2;
    opt->zero_grad();
    p.pow(3).sum().backward();
    opt->step();
  }
  EXPECT_TRUE(torch::equal(p1, p2));
  EXPECT_EQ(b.steps_taken(), 4);
}

TEST(AdamW, LoadStateRejectsMissingAndMisshapenTensors) {
  auto p = torch::zeros({2, 2}, torch::requires_grad());
  AdamW a({{"w", p}}, AdamWConfig{});
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
  EXPECT_DOUBLE_EQ(lr_at(0.0, 1.0, 0.0, 2.0, 10.0), 0.0);
  EXPECT_DOUBLE_EQ(lr_at(1.0, 1.0, 0.0, 2.0, 10.0), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(2.0, 1.0, 0.0, 2.0, 10.0), 1.0);
  EXPECT_NEAR(lr_at(6.0, 1.0, 0.1, 2.0, 10.0), 0.1 + 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(lr_at(10.0, 1.0, 0.1, 2.0, 10.0), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(lr_at(3.0, 1.0, 0.0, 0.0, 10.0), 0.5 * (1 + std::cos(M_PI * 0.3)));
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

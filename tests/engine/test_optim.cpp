// The engine's optimizers against torch::optim (AdamW fused multi-tensor, SGD with momentum / Nesterov) and
// MAE's LARS formula, parameter groups by rule (weight decay, MAE's layer-wise lr decay, against timm's
// param_groups_layer_decay for a ViT-B: tests/engine/timm_layer_decay_reference.py), the lr schedules and
// clipping.
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <torch/optim/sgd.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "run_command.h"
#include "semaim/core/errors.h"
#include "semaim/core/lr_schedule.h"
#include "semaim/engine/optimizer.h"
#include "semaim/models/vit.h"
#include "semaim_paths.h"
#include "temp_dir.h"

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

namespace {

// MAE's util/lars.py step written out in double precision on plain tensors: the reference LARS is held to.
// params, grads, mu: per parameter; wd and lr per parameter (its group's weight decay, lr x lr_scale).
void mae_lars_step(std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                   std::vector<at::Tensor>& mu, const std::vector<double>& wd, const std::vector<double>& lr,
                   double momentum, double eta) {
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor d = grads[i];
    if (params[i].dim() > 1) {
      d = d + wd[i] * params[i];
      const double pn = params[i].norm().item<double>(), dn = d.norm().item<double>();
      d = d * ((pn > 0 && dn > 0) ? eta * pn / dn : 1.0);
    }
    mu[i] = momentum * mu[i] + d;
    params[i] = params[i] - lr[i] * mu[i];
  }
}

// A small two-layer net's loss over the given weights (w1 (4,3), b1 (4), w0 (3,3), w2 (2,4), b2 (2)).
at::Tensor lars_net_loss(const std::vector<at::Tensor>& p, const at::Tensor& x) {
  const at::Tensor h = at::tanh(at::matmul(at::matmul(x, p[2].t()) + x, p[0].t()) + p[1]);
  return (at::matmul(h, p[3].t()) + p[4]).pow(2).mean();
}

}  // namespace

TEST(Lars, StepsEqualMaeFormulaWithAdaptationOnlyOnMatricesAndPerGroupLrScale) {
  torch::manual_seed(4);
  // w0 starts at zero: its first step has ||p|| = 0, so the trust ratio is 1. The second group decays and
  // steps at a quarter of the lr; its bias must still get neither decay nor adaptation.
  std::vector<at::Tensor> ours{torch::randn({4, 3}), torch::randn({4}), torch::zeros({3, 3}),
                               torch::randn({2, 4}), torch::randn({2})};
  std::vector<at::Tensor> ref;
  for (auto& p : ours) {
    ref.push_back(p.to(at::kDouble));
    p.requires_grad_();
  }
  const std::vector<at::Tensor> start = {ours[0].detach().clone(), ours[3].detach().clone()};
  std::vector<ParamGroup> groups{{"g0", 0.05, 1.0, {{"w1", ours[0]}, {"b1", ours[1]}, {"w0", ours[2]}}},
                                 {"g1", 0.1, 0.25, {{"w2", ours[3]}, {"b2", ours[4]}}}};
  const double lr = 0.5, momentum = 0.9, eta = 0.02;
  Lars opt(std::move(groups), LarsOptions{momentum, eta});
  opt.set_lr(lr);
  const std::vector<double> wd{0.05, 0.05, 0.05, 0.1, 0.1}, lrs{lr, lr, lr, lr * 0.25, lr * 0.25};
  std::vector<at::Tensor> mu;
  for (const auto& r : ref) mu.push_back(torch::zeros_like(r));
  const auto x = torch::randn({8, 3});
  for (int it = 0; it < 4; ++it) {
    opt.zero_grad();
    lars_net_loss(ours, x).backward();
    opt.step();
    std::vector<at::Tensor> rp;
    for (auto& r : ref) rp.push_back(r.detach().requires_grad_());
    lars_net_loss(rp, x.to(at::kDouble)).backward();
    std::vector<at::Tensor> grads;
    for (auto& r : rp) grads.push_back(r.grad());
    ref.clear();
    for (auto& r : rp) ref.push_back(r.detach());
    mae_lars_step(ref, grads, mu, wd, lrs, momentum, eta);
    for (size_t i = 0; i < ours.size(); ++i)
      EXPECT_TRUE(torch::allclose(ours[i].to(at::kDouble), ref[i], 1e-5, 1e-6))
          << "step " << it << " param " << i << ": " << (ours[i].to(at::kDouble) - ref[i]).abs().max();
  }
  EXPECT_GT((ours[0] - start[0]).abs().max().item<double>(), 1e-3);  // the steps did move the weights
  EXPECT_GT((ours[3] - start[1]).abs().max().item<double>(), 1e-4);
  EXPECT_EQ(opt.steps_taken(), 4);
}

TEST(Lars, StateRoundTripContinuesIdentically) {
  torch::manual_seed(5);
  const auto b_steps = expect_state_round_trip_continues([](at::Tensor p) {
    auto opt = std::make_unique<Lars>(groups_of({{"w", p}}), LarsOptions{0.9, 0.01});
    opt->set_lr(0.1);
    return opt;
  });
  EXPECT_EQ(b_steps, 4);
  auto p = torch::zeros({2, 2}, torch::requires_grad());
  Lars lars(groups_of({{"w", p}}), LarsOptions{});
  EXPECT_EQ(lars.state().front().first, "mu.w");
  EXPECT_THROW(Lars(groups_of({{"w", p}}), LarsOptions{0.9, 0.0}), semaim::InputError);
}

namespace {

// timm's groups for a ViT-B (tests/engine/timm_layer_decay_reference.py), run once; `skip` or `failure` say
// why there are none.
struct TimmGroups {
  nlohmann::json groups;
  std::string skip, failure;
};

const TimmGroups& timm_layer_decay_groups() {
  static const TimmGroups out = [] {
    TimmGroups t;
    if (!std::filesystem::exists(SEMAIM_PYTHON)) {
      t.skip = std::string("no venv python at ") + SEMAIM_PYTHON + " (run tools/setup.sh)";
      return t;
    }
    const semaim::test::TempDir tmp;
    const std::string path = tmp.file("groups.json");
    const auto r =
        semaim::testing::run_command(std::string("'") + SEMAIM_PYTHON + "' '" + SEMAIM_SOURCE_DIR +
                                     "/tests/engine/timm_layer_decay_reference.py' '" + path + "'");
    if (r.exit_code == 3) t.skip = "timm is not importable in the venv: " + r.output;
    if (r.exit_code != 0 && r.exit_code != 3)
      t.failure = "timm_layer_decay_reference.py exited " + std::to_string(r.exit_code) + ": " + r.output;
    if (r.exit_code == 0) t.groups = nlohmann::json::parse(std::ifstream(path));
    return t;
  }();
  return out;
}

// MAE's fine-tuning ViT-B/16 parameters by name: the encoder (learnable position table) without its final
// norm plus fc_norm and head for global_pool avg; with the final norm plus head for the cls token (token).
NamedParams vit_b_classifier_params(const semaim::models::VitEncoder& enc, bool avg) {
  NamedParams out;
  for (const auto& item : enc->named_parameters()) {
    if (avg && item.key().rfind("norm.", 0) == 0) continue;
    out.emplace_back(item.key(), item.value());
  }
  auto t = [](std::vector<int64_t> shape) { return torch::zeros(shape, torch::requires_grad()); };
  if (avg) {
    out.emplace_back("fc_norm.weight", t({768}));
    out.emplace_back("fc_norm.bias", t({768}));
  }
  out.emplace_back("head.weight", t({1000, 768}));
  out.emplace_back("head.bias", t({1000}));
  return out;
}

std::vector<ParamGroup> mae_layer_decay_groups(const NamedParams& params) {
  GroupRule rule;
  rule.weight_decay = 0.05;
  rule.no_decay_names = {"cls_token", "pos_embed"};
  rule.layer_decay = 0.65;
  rule.num_layers = 12 + 2;
  rule.layer_id = [](const std::string& n) { return vit_layer_id(n, 12); };
  return make_param_groups(params, rule);
}

// name -> (lr_scale, weight_decay) of the group holding it.
std::map<std::string, std::pair<double, double>> by_param(const std::vector<ParamGroup>& groups) {
  std::map<std::string, std::pair<double, double>> out;
  for (const auto& g : groups)
    for (const auto& [n, p] : g.params) out[n] = {g.lr_scale, g.weight_decay};
  return out;
}

std::map<std::string, std::pair<double, double>> by_param(const nlohmann::json& groups) {
  std::map<std::string, std::pair<double, double>> out;
  for (const auto& g : groups)
    for (const auto& n : g["params"])
      out[n.get<std::string>()] = {g["lr_scale"].get<double>(), g["weight_decay"].get<double>()};
  return out;
}

}  // namespace

TEST(ParamGroups, MaeLayerDecayOnVitBEqualsTimmParamGroupsLayerDecayWithAvgPool) {
  const auto& ref = timm_layer_decay_groups();
  if (!ref.skip.empty()) GTEST_SKIP() << ref.skip;
  ASSERT_TRUE(ref.failure.empty()) << ref.failure;
  const semaim::models::VitConfig cfg{.learnable_pos_embed = true};  // ViT-B/16 at 224
  const semaim::models::VitEncoder enc(cfg);
  const NamedParams params = vit_b_classifier_params(enc, /*avg=*/true);
  const nlohmann::json& timm = ref.groups["avg"];
  std::vector<std::string> names;
  for (const auto& [n, p] : params) names.push_back(n);
  EXPECT_EQ(names, timm["named_parameters"].get<std::vector<std::string>>());  // same model, same order
  // The same groups in the same order, each with the same members, lr scale and weight decay.
  const auto ours = mae_layer_decay_groups(params);
  ASSERT_EQ(ours.size(), timm["groups"].size());
  for (size_t i = 0; i < ours.size(); ++i) {
    const auto& t = timm["groups"][i];
    std::vector<std::string> members;
    for (const auto& [n, p] : ours[i].params) members.push_back(n);
    EXPECT_EQ(members, t["params"].get<std::vector<std::string>>()) << ours[i].name;
    EXPECT_NEAR(ours[i].lr_scale, t["lr_scale"].get<double>(), 1e-15) << ours[i].name;
    EXPECT_EQ(ours[i].weight_decay, t["weight_decay"].get<double>()) << ours[i].name;
  }
  EXPECT_EQ(ours.size(), 28u);  // (1 embedding + 12 blocks + head) x (decay, no decay)
}

TEST(ParamGroups, WithTheFinalNormMaeAndTimmDisagreeOnlyOnItsLayerAndMaesRuleIsKept) {
  // With the cls token (global_pool token) the encoder keeps its final `norm`. timm's group_matcher puts
  // `^norm` with the last block (layer 12, scale 0.65); MAE's get_layer_id_for_vit gives every name outside
  // the embedding and the blocks layer depth + 1 (scale 1). semaim follows MAE; every other parameter agrees.
  const auto& ref = timm_layer_decay_groups();
  if (!ref.skip.empty()) GTEST_SKIP() << ref.skip;
  ASSERT_TRUE(ref.failure.empty()) << ref.failure;
  const semaim::models::VitConfig cfg{.learnable_pos_embed = true};
  const semaim::models::VitEncoder enc(cfg);
  const auto ours = by_param(mae_layer_decay_groups(vit_b_classifier_params(enc, /*avg=*/false)));
  const auto timm = by_param(ref.groups["token"]["groups"]);
  ASSERT_EQ(ours.size(), timm.size());
  for (const auto& [name, scale_wd] : timm) {
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_EQ(ours.at(name).second, scale_wd.second) << name;
    if (name.rfind("norm.", 0) == 0) {
      EXPECT_NEAR(scale_wd.first, 0.65, 1e-15) << name << ": timm's layer for the final norm changed";
      EXPECT_DOUBLE_EQ(ours.at(name).first, 1.0) << name;
    } else {
      EXPECT_NEAR(ours.at(name).first, scale_wd.first, 1e-15) << name;
    }
  }
}

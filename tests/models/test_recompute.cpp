// Activation checkpointing (models/recompute.h): with 0, 1 or all blocks checkpointed, a small ViT encoder
// (also through forward_intermediates), a small classifier and a small two-stream AIM model (drop path on)
// give the same loss, the same gradient for every parameter and the same random stream afterwards, in fp32
// and under bf16 autocast; the switch engages only in training with grad and leaves the state dict alone.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/models/aim.h"
#include "semaim/models/classifier.h"
#include "semaim/models/recompute.h"
#include "semaim/models/targets.h"
#include "semaim/models/vit.h"

namespace {

using semaim::models::AimConfig;
using semaim::models::AimVit;
using semaim::models::Block;
using semaim::models::VitConfig;
using semaim::models::VitEncoder;

constexpr const char* kRecomputeNode = "semaim::RecomputeBackward";

// CPU bf16 autocast for one scope (the engine's AutocastGuard, which this test program cannot link).
class CpuAutocast {
 public:
  explicit CpuAutocast(bool on) : prev_(at::autocast::is_autocast_enabled(at::kCPU)) {
    at::autocast::set_autocast_enabled(at::kCPU, on);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~CpuAutocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCPU, prev_);
  }
  CpuAutocast(const CpuAutocast&) = delete;
  CpuAutocast& operator=(const CpuAutocast&) = delete;

 private:
  bool prev_;
};

VitConfig small_vit(double drop_path) {
  VitConfig v;
  v.img_size = 16;
  v.patch_size = 4;
  v.in_chans = 3;
  v.embed_dim = 32;
  v.num_heads = 2;
  v.depth = 4;
  v.drop_path_rate = drop_path;
  return v;
}

AimConfig small_aim(const std::string& attention) {
  AimConfig c;
  c.vit = small_vit(0.3);
  c.decoder_depth = 2;
  c.attention = attention;
  return c;
}

// One training step's results: the loss, every trainable parameter's gradient, and the next draws of the
// default generator (the backward must leave the random stream where the plain model leaves it).
struct Outcome {
  double loss = 0;
  std::vector<std::pair<std::string, at::Tensor>> grads;
  at::Tensor next_draw;
};

Outcome train_step(torch::nn::Module& model, const std::function<at::Tensor()>& loss_fn, bool bf16,
                   uint64_t seed = 11) {
  model.train();
  model.zero_grad();
  at::manual_seed(seed);
  at::Tensor loss;
  {
    CpuAutocast ac(bf16);
    loss = loss_fn();
  }
  loss.backward();
  Outcome o;
  o.loss = loss.item<double>();
  for (const auto& p : model.named_parameters()) {
    if (!p.value().requires_grad()) continue;
    EXPECT_TRUE(p.value().grad().defined()) << p.key() << " got no gradient";
    if (p.value().grad().defined()) o.grads.emplace_back(p.key(), p.value().grad().clone());
  }
  o.next_draw = at::rand({8});
  return o;
}

// Equal up to 1e-6 of each tensor's scale (the recompute runs the same kernels on the same inputs, so in
// practice the figures are bitwise equal).
void expect_same(const Outcome& got, const Outcome& want, const std::string& what) {
  EXPECT_LE(std::abs(got.loss - want.loss), 1e-6 * std::abs(want.loss)) << what << ": loss";
  ASSERT_EQ(got.grads.size(), want.grads.size()) << what;
  for (size_t i = 0; i < want.grads.size(); ++i) {
    const auto& [name, g] = got.grads[i];
    const auto& w = want.grads[i].second;
    ASSERT_EQ(name, want.grads[i].first) << what;
    const double scale = w.abs().max().item<double>();
    EXPECT_GT(scale, 0.0) << what << ": " << name << " has a zero gradient";
    EXPECT_LE((g - w).abs().max().item<double>(), 1e-6 * scale) << what << ": gradient of " << name;
  }
  EXPECT_TRUE(at::equal(got.next_draw, want.next_draw)) << what << ": random stream after the step";
}

// Every checkpoint count of `counts` against none, for `model` under `loss_fn`.
template <class Model>
void expect_counts_match(Model& model, const std::function<at::Tensor()>& loss_fn, bool bf16,
                         const std::vector<int64_t>& counts, const std::string& what) {
  model->set_checkpoint_blocks(0);
  const Outcome plain = train_step(*model, loss_fn, bf16);
  for (const int64_t n : counts) {
    model->set_checkpoint_blocks(n);
    expect_same(train_step(*model, loss_fn, bf16), plain, what + ", checkpoint_blocks=" + std::to_string(n));
  }
  model->set_checkpoint_blocks(0);
}

std::vector<std::string> state_keys(const torch::nn::Module& m) {
  std::vector<std::string> keys;
  for (const auto& p : m.named_parameters()) keys.push_back(p.key());
  for (const auto& b : m.named_buffers()) keys.push_back(b.key());
  return keys;
}

}  // namespace

TEST(Recompute, VitEncoderLossAndEveryGradientMatchWithoutCheckpointing) {
  at::manual_seed(3);
  VitEncoder enc(small_vit(0.3));
  const auto imgs = at::randn({3, 3, 16, 16});
  const auto w = at::randn({3, 17, 32});
  const auto loss_fn = [&] { return (enc->forward_features(imgs) * w).sum(); };
  // Drop path draws matter here: another seed gives another loss, so a recompute with other draws would show.
  enc->set_checkpoint_blocks(0);
  EXPECT_NE(train_step(*enc, loss_fn, false, 11).loss, train_step(*enc, loss_fn, false, 12).loss);
  expect_counts_match(enc, loss_fn, /*bf16=*/false, {1, 4, 100}, "vit fp32");
}

TEST(Recompute, VitEncoderUnderBf16AutocastMatchesWithoutCheckpointing) {
  at::manual_seed(4);
  VitEncoder enc(small_vit(0.3));
  const auto imgs = at::randn({3, 3, 16, 16});
  const auto w = at::randn({3, 17, 32});
  const auto loss_fn = [&] { return (enc->forward_features(imgs).to(at::kFloat) * w).sum(); };
  expect_counts_match(enc, loss_fn, /*bf16=*/true, {1, 4}, "vit bf16");
}

TEST(Recompute, AimVitBothAttentionFormsMatchWithoutCheckpointing) {
  for (const std::string attention : {"causal", "dense"}) {
    for (const bool bf16 : {false, true}) {
      at::manual_seed(5);
      AimVit model(small_aim(attention));
      const auto imgs = at::randn({3, 3, 16, 16});
      const auto keys = at::rand({3, 16});
      semaim::models::TargetConfig tcfg;
      const auto loss_fn = [&] { return model->forward_loss(imgs, keys, tcfg); };
      // 1: one encoder block and one query block; 2: half the encoder, every query block; 4: all of both.
      expect_counts_match(model, loss_fn, bf16, {1, 2, 4}, "aim " + attention + (bf16 ? " bf16" : " fp32"));
    }
  }
}

TEST(Recompute, VitClassifierAndIntermediatesMatchWithoutCheckpointing) {
  // The fine-tuning classifier and forward_intermediates (the segmentation backbone's path) run the same
  // blocks, so the switch reaches them too.
  at::manual_seed(10);
  semaim::models::ClassifierConfig c;
  c.vit = small_vit(0.2);
  c.num_classes = 5;
  c.head_init_std = 0.02;
  semaim::models::VitClassifier clf(c);
  const auto imgs = at::randn({3, 3, 16, 16});
  const auto labels = at::tensor({0, 3, 4}, at::kLong);
  const auto ce = [&] { return at::cross_entropy_loss(clf->forward(imgs), labels); };
  expect_counts_match(clf, ce, /*bf16=*/false, {2, 4}, "classifier fp32");
  VitEncoder enc(small_vit(0.2));
  semaim::models::IntermediatesOptions opts;
  opts.indices = int64_t{2};
  const auto inter = [&] {
    const auto out = enc->forward_intermediates(imgs, opts);
    return out.intermediates[0].square().mean() + out.intermediates[1].mean() + out.features.square().mean();
  };
  expect_counts_match(enc, inter, /*bf16=*/true, {1, 4}, "intermediates bf16");
}

TEST(Recompute, SetterMarksTheFirstBlocksOfEachStackAndKeepsTheStateDict) {
  AimVit model(small_aim("causal"));
  const auto before = state_keys(*model);
  model->set_checkpoint_blocks(3);
  EXPECT_EQ(model->checkpoint_blocks(), 3);
  for (int64_t i = 0; i < model->depth(); ++i) EXPECT_EQ(model->block(i)->recompute, i < 3) << "block " << i;
  int64_t query_marked = 0;
  for (const auto& m : model->modules(/*include_self=*/false))
    if (const auto* q = dynamic_cast<const semaim::models::DecoderBlockImpl*>(m.get()))
      query_marked += q->recompute;
  EXPECT_EQ(query_marked, 2);  // both query blocks: 3 >= decoder depth 2
  EXPECT_EQ(state_keys(*model), before);
  model->set_checkpoint_blocks(0);
  for (int64_t i = 0; i < model->depth(); ++i) EXPECT_FALSE(model->block(i)->recompute);
  EXPECT_THROW(model->set_checkpoint_blocks(-1), semaim::InputError);
}

TEST(Recompute, OnlyTrainingWithGradKeepsJustTheInputs) {
  at::manual_seed(6);
  VitEncoder enc(small_vit(0.0));
  enc->set_checkpoint_blocks(1);
  Block first = enc->block(0), second = enc->block(1);
  const auto x = at::randn({2, 17, 32}).requires_grad_();
  enc->train();
  EXPECT_EQ(first(x).grad_fn()->name(), kRecomputeNode);
  EXPECT_NE(second(x).grad_fn()->name(), kRecomputeNode);
  {
    at::NoGradGuard no_grad;
    EXPECT_EQ(first(x).grad_fn(), nullptr);
  }
  // With no input requiring grad the block runs normally, so its parameters still get gradients.
  const auto plain_x = x.detach();
  first(plain_x).sum().backward();
  EXPECT_TRUE(first->attn->qkv->weight.grad().defined());
  // Eval: the plain block, same output.
  enc->eval();
  const auto y_eval = first(x);
  EXPECT_NE(y_eval.grad_fn()->name(), kRecomputeNode);
  enc->set_checkpoint_blocks(0);
  EXPECT_TRUE(at::equal(y_eval, first(x)));
}

TEST(Recompute, RetainedGraphRecomputesOnEveryBackward) {
  at::manual_seed(8);
  VitEncoder enc(small_vit(0.2));
  const auto imgs = at::randn({2, 3, 16, 16});
  const auto run = [&](int64_t n) {
    enc->set_checkpoint_blocks(n);
    enc->zero_grad();
    at::manual_seed(1);
    const auto loss = enc->forward_features(imgs).square().mean();
    loss.backward({}, /*retain_graph=*/true);
    loss.backward();
    return enc->block(0)->mlp->fc1->weight.grad().clone();
  };
  const auto plain = run(0);
  EXPECT_LE((run(4) - plain).abs().max().item<double>(), 1e-6 * plain.abs().max().item<double>());
}

TEST(Recompute, CudaDropPathDrawsAreReplayed) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(9);
  VitEncoder enc(small_vit(0.3));
  enc->to(at::kCUDA);
  const auto imgs = at::randn({3, 3, 16, 16}).to(at::kCUDA);
  const auto w = at::randn({3, 17, 32}).to(at::kCUDA);
  const auto loss_fn = [&] { return (enc->forward_features(imgs) * w).sum(); };
  expect_counts_match(enc, loss_fn, /*bf16=*/false, {1, 4}, "vit cuda fp32");
}

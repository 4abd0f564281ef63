// SyncBatchNorm2d: without a reduction it is torch::nn::BatchNorm2d (names, forward, gradients, running
// statistics); with a reduction that sums over two ranks (two threads here) each half of a batch is normalized
// and differentiated exactly as the whole batch in one BatchNorm2d.
#include <gtest/gtest.h>
#include <torch/nn/modules/batchnorm.h>

#include <barrier>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "semaim/core/errors.h"
#include "semaim/models/heads/upernet.h"
#include "semaim/models/sync_batchnorm.h"

namespace {
using semaim::models::SumAcrossRanks;
using semaim::models::SyncBatchNorm2d;

constexpr int64_t kC = 3;

// The reference: a torch BatchNorm2d with the same affine parameters.
torch::nn::BatchNorm2d reference_like(const SyncBatchNorm2d& s) {
  torch::nn::BatchNorm2d bn(kC);
  torch::NoGradGuard g;
  bn->weight.copy_(s->weight);
  bn->bias.copy_(s->bias);
  return bn;
}

SyncBatchNorm2d with_affine() {
  SyncBatchNorm2d s(kC);
  torch::NoGradGuard g;
  s->weight.copy_(at::tensor({0.5, 1.5, -2.0}));
  s->bias.copy_(at::tensor({0.1, -0.3, 0.7}));
  return s;
}

// Sums a tensor over two threads standing for two ranks.
class TwoRankSum {
 public:
  void sum(int rank, at::Tensor& t) {
    slot_[rank] = t.clone();
    sync_.arrive_and_wait();
    const at::Tensor total = slot_[0] + slot_[1];
    sync_.arrive_and_wait();  // both have read the slots before either writes again
    t.copy_(total);
  }

 private:
  std::barrier<> sync_{2};
  at::Tensor slot_[2];
};

TEST(SyncBatchNorm, KeepsBatchNormNamesAndShapes) {
  SyncBatchNorm2d s(kC);
  torch::nn::BatchNorm2d bn(kC);
  for (const auto& item : bn->named_parameters())
    EXPECT_TRUE(s->named_parameters().contains(item.key())) << item.key();
  for (const auto& item : bn->named_buffers()) {
    ASSERT_TRUE(s->named_buffers().contains(item.key())) << item.key();
    EXPECT_TRUE(s->named_buffers()[item.key()].equal(item.value())) << item.key();
  }
  EXPECT_EQ(s->named_parameters().size(), bn->named_parameters().size());
  EXPECT_EQ(s->named_buffers().size(), bn->named_buffers().size());
}

TEST(SyncBatchNorm, WithoutReductionIsBatchNormInTrainingAndEval) {
  at::manual_seed(0);
  SyncBatchNorm2d s = with_affine();
  auto bn = reference_like(s);
  for (int step = 0; step < 2; ++step) {
    const at::Tensor x = at::randn({4, kC, 5, 6}) * 3 + 1;
    EXPECT_TRUE(s->forward(x).equal(bn->forward(x)));
  }
  EXPECT_TRUE(s->running_mean.equal(bn->running_mean));
  EXPECT_TRUE(s->running_var.equal(bn->running_var));
  EXPECT_EQ(s->num_batches_tracked.item<int64_t>(), 2);
  s->eval(), bn->eval();
  const at::Tensor x = at::randn({2, kC, 3, 3});
  EXPECT_TRUE(s->forward(x).equal(bn->forward(x)));
}

TEST(SyncBatchNorm, OneRankReductionMatchesBatchNormValuesAndGradients) {
  at::manual_seed(1);
  SyncBatchNorm2d s = with_affine();
  auto bn = reference_like(s);
  s->set_sum_across_ranks(std::make_shared<const SumAcrossRanks>([](at::Tensor&) {}));
  const at::Tensor x = (at::randn({4, kC, 5, 6}) * 2 - 1).requires_grad_();
  const at::Tensor xr = x.detach().clone().requires_grad_();
  const at::Tensor r = at::randn({4, kC, 5, 6});
  const at::Tensor y = s->forward(x), yr = bn->forward(xr);
  EXPECT_TRUE(at::allclose(y, yr, 1e-5, 1e-5));
  (y * r).sum().backward();
  (yr * r).sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), xr.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(s->weight.grad(), bn->weight.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(s->bias.grad(), bn->bias.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(s->running_mean, bn->running_mean, 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(s->running_var, bn->running_var, 1e-6, 1e-6));
}

TEST(SyncBatchNorm, TwoRanksNormalizeAndDifferentiateAsTheWholeBatch) {
  at::manual_seed(2);
  const at::Tensor x = at::randn({6, kC, 4, 5}) * 2 + 0.5;
  const at::Tensor r = at::randn({6, kC, 4, 5});
  // The whole batch through one BatchNorm2d; loss = sum(y * r).
  SyncBatchNorm2d ref_init = with_affine();
  auto bn = reference_like(ref_init);
  const at::Tensor xr = x.clone().requires_grad_();
  const at::Tensor yr = bn->forward(xr);
  (yr * r).sum().backward();

  TwoRankSum comm;
  SyncBatchNorm2d ranks[2] = {with_affine(), with_affine()};
  at::Tensor y[2], gx[2];
  auto run = [&](int rank) {
    ranks[rank]->set_sum_across_ranks(
        std::make_shared<const SumAcrossRanks>([&comm, rank](at::Tensor& t) { comm.sum(rank, t); }));
    const at::Tensor xs = x.slice(0, 3 * rank, 3 * rank + 3).clone().requires_grad_();
    y[rank] = ranks[rank]->forward(xs);
    (y[rank] * r.slice(0, 3 * rank, 3 * rank + 3)).sum().backward();
    gx[rank] = xs.grad();
  };
  std::thread other(run, 1);
  run(0);
  other.join();
  EXPECT_TRUE(at::allclose(at::cat({y[0], y[1]}), yr, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(at::cat({gx[0], gx[1]}), xr.grad(), 1e-4, 1e-5));
  // Parameter gradients stay local: their sum over ranks is the whole batch's.
  EXPECT_TRUE(at::allclose(ranks[0]->weight.grad() + ranks[1]->weight.grad(), bn->weight.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(ranks[0]->bias.grad() + ranks[1]->bias.grad(), bn->bias.grad(), 1e-4, 1e-5));
  for (auto& s : ranks) {
    EXPECT_TRUE(at::allclose(s->running_mean, bn->running_mean, 1e-6, 1e-6));
    EXPECT_TRUE(at::allclose(s->running_var, bn->running_var, 1e-6, 1e-6));
  }
  // A half alone would have been normalized differently: the reduction is what made them equal.
  SyncBatchNorm2d alone = with_affine();
  EXPECT_FALSE(at::allclose(alone->forward(x.slice(0, 0, 3)), y[0], 1e-3, 1e-3));
}

TEST(SyncBatchNorm, OneValuePerChannelOverAllRanksIsAnError) {
  SyncBatchNorm2d s(kC);
  s->set_sum_across_ranks(std::make_shared<const SumAcrossRanks>([](at::Tensor&) {}));
  EXPECT_THROW(s->forward(at::randn({1, kC, 1, 1})), semaim::InputError);
  EXPECT_THROW(s->forward(at::randn({2, kC + 1, 2, 2})), semaim::InputError);
}

TEST(SyncBatchNorm, UperNetSynchronizesEveryNormOfItsHeads) {
  semaim::models::UperNetConfig c;
  c.vit.img_size = 16, c.vit.patch_size = 4, c.vit.embed_dim = 8, c.vit.depth = 4, c.vit.num_heads = 2;
  c.out_indices = {0, 1, 2, 3}, c.channels = 4, c.aux_channels = 4, c.num_classes = 3;
  semaim::models::UperNet m(c);
  // UPerHead: 4 PSP + bottleneck + 3 lateral + 3 FPN + fpn_bottleneck; FCN: 1; neck: 1.
  const int64_t n = semaim::models::set_sync_batchnorm(
      *m, std::make_shared<const SumAcrossRanks>([](at::Tensor&) {}));
  EXPECT_EQ(n, 4 + 1 + 3 + 3 + 1 + 1 + 1);
  std::set<std::string> norm_keys;
  for (const auto& item : m->named_buffers())
    if (item.key().find("running_mean") != std::string::npos) norm_keys.insert(item.key());
  EXPECT_EQ(static_cast<int64_t>(norm_keys.size()), n);
  EXPECT_TRUE(norm_keys.contains("neck.fpn1.1.running_mean"));
  EXPECT_TRUE(norm_keys.contains("decode_head.fpn_bottleneck.bn.running_mean"));
}

}  // namespace

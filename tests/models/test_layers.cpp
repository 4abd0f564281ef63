// Stochastic depth with timm's semantics (drop_path, dpr) and the position-table resampling's input checks.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/models/layers.h"
#include "semaim/models/vit.h"

namespace {

namespace m = semaim::models;

TEST(DropPath, EvalModeAndRateZeroReturnTheInputWithoutDrawing) {
  auto x = at::randn({8, 5, 4});
  at::manual_seed(21);
  EXPECT_TRUE(m::drop_path(x, 0.4, /*training=*/false).is_same(x));
  EXPECT_TRUE(m::drop_path(x, 0.0, /*training=*/true).is_same(x));
  const float next = at::rand({1}).item<float>();
  at::manual_seed(21);
  EXPECT_EQ(at::rand({1}).item<float>(), next) << "drop_path drew from the generator";
}

TEST(DropPath, TrainingZeroesWholeSamplesAndScalesTheRestByOneOverKeep) {
  const int64_t n = 4000;
  const double rate = 0.25, keep = 1.0 - rate;
  auto x = at::rand({n, 3, 5}) + 1.0;  // no zero entries, so a kept sample is never all zero
  auto y = m::drop_path(x, rate, /*training=*/true);
  auto kept = y.ne(0).flatten(1);
  auto all_kept = kept.all(1), none_kept = kept.logical_not().all(1);
  EXPECT_TRUE(at::logical_or(all_kept, none_kept).all().item<bool>()) << "a sample was partly dropped";
  auto kept_x = x.index({all_kept}), kept_y = y.index({all_kept});
  EXPECT_TRUE(at::allclose(kept_y, kept_x / keep, 1e-6, 0.0));
  // Binomial(4000, 0.75): the kept fraction lies within 5 standard deviations.
  const double frac = all_kept.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(frac, keep, 5.0 * std::sqrt(keep * rate / static_cast<double>(n)));
}

TEST(DropPath, MaskIsTimmsBernoulliDrawFromTheDefaultGenerator) {
  auto x = at::rand({64, 7, 3}) + 1.0;
  at::manual_seed(33);
  auto y = m::drop_path(x, 0.5, /*training=*/true);
  at::manual_seed(33);
  auto mask = at::empty({64, 1, 1}).bernoulli_(0.5);  // timm: x.new_empty((N, 1, 1)).bernoulli_(keep)
  EXPECT_TRUE(at::equal(y.ne(0), mask.ne(0).expand_as(x)));
}

TEST(DropPath, RatesRiseLinearlyAsTimmsDpr) {
  auto dpr = m::drop_path_rates(0.3, 4);
  ASSERT_EQ(dpr.size(), 4u);
  EXPECT_EQ(dpr[0], 0.0);
  // float32 values as timm's (exact equality with timm's dpr: VitTimm.BlockDropPathRatesEqualTimmDpr).
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(dpr[i], static_cast<double>(static_cast<float>(dpr[i]))) << i;
    EXPECT_NEAR(dpr[i], 0.1 * static_cast<double>(i), 1e-7) << i;
  }
  EXPECT_EQ(m::drop_path_rates(0.2, 1), std::vector<double>{0.0});
}

// A 3-block encoder of 16x16 grey images at `drop_path_rate` and a batch of n inputs, drawn alike in every
// test.
std::pair<m::VitEncoder, at::Tensor> tiny_encoder(double drop_path_rate, int64_t n) {
  at::manual_seed(4);
  m::VitEncoder enc(m::VitConfig{.img_size = 16, .patch_size = 4, .in_chans = 1, .embed_dim = 32, .depth = 3,
                                 .num_heads = 2, .drop_path_rate = drop_path_rate});
  return {enc, at::randn({n, 1, 16, 16})};
}

TEST(DropPath, EncoderAtRateZeroTrainsExactlyAsInEval) {
  auto [enc, x] = tiny_encoder(0.0, 3);
  at::NoGradGuard ng;
  enc->train();
  auto train_out = enc->forward_features(x);
  enc->eval();
  EXPECT_TRUE(at::equal(train_out, enc->forward_features(x)));
}

TEST(DropPath, EncoderDropsBranchesOnlyInTraining) {
  auto [enc, x] = tiny_encoder(0.5, 16);
  at::NoGradGuard ng;
  enc->eval();
  auto a = enc->forward_features(x), b = enc->forward_features(x);
  EXPECT_TRUE(at::equal(a, b));
  enc->train();
  EXPECT_FALSE(at::allclose(enc->forward_features(x), a));
  // The function's limit, as timm's: at rate 1 every sample's branch is zero (no division by keep = 0).
  EXPECT_TRUE(at::equal(m::drop_path(at::ones({4, 2}), 1.0, true), at::zeros({4, 2})));
}

TEST(ResampleAbsPosEmbed, EqualGridReturnsTheTableAndBadShapesAreInputErrors) {
  auto table = at::randn({1, 1 + 12, 8});
  EXPECT_TRUE(m::resample_abs_pos_embed(table, {3, 4}, {3, 4}).is_same(table));
  auto up = m::resample_abs_pos_embed(table, {6, 5}, {3, 4});
  EXPECT_EQ(up.sizes(), (std::vector<int64_t>{1, 31, 8}));
  EXPECT_TRUE(at::equal(up.narrow(1, 0, 1), table.narrow(1, 0, 1)));  // the cls row is kept
  EXPECT_EQ(m::resample_abs_pos_embed(table.to(at::kDouble), {2, 2}, {3, 4}).scalar_type(), at::kDouble);
  EXPECT_THROW(m::resample_abs_pos_embed(table, {6, 5}, {4, 4}), semaim::InputError);
  EXPECT_THROW(m::resample_abs_pos_embed(table, {0, 5}, {3, 4}), semaim::InputError);
  EXPECT_THROW(m::resample_abs_pos_embed(table.squeeze(0), {6, 5}, {3, 4}), semaim::InputError);
}

}  // namespace

// Tests of the linear probe: separable synthetic data, random labels, and which tokens each pooling uses.
#include <gtest/gtest.h>

#include "semaim/core/errors.h"
#include "semaim/eval/linprobe.h"

namespace semaim::eval {
namespace {

constexpr int64_t kClasses = 8;

// n images (1, 8, 8): low noise everywhere, row `label` bright. -> images (n, 1, 8, 8), labels (n)
data::ImageSet bright_row_set(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  data::ImageSet set;
  set.labels = at::randint(0, kClasses, {n}, gen, at::kLong);
  at::Tensor img = at::randint(0, 40, {n, 1, 8, 8}, gen, at::kLong);
  const at::Tensor row_mask = at::arange(8, at::kLong).view({1, 8}).eq(set.labels.view({n, 1}));  // (n, 8)
  img = img + 160 * row_mask.view({n, 1, 8, 1}).to(at::kLong);
  set.images = img.to(at::kByte);
  set.name = "bright-rows";
  return set;
}

data::AugmentConfig eval_tf() {
  data::AugmentConfig tf;
  tf.out_size = 8;
  tf.random = false;
  tf.mean = {0.2};
  tf.std = {0.3};
  return tf;
}

// cls token = row means (tells the class); patch token r = row r, so their mean = column means (does not).
at::Tensor cls_informative(const at::Tensor& x) {
  const at::Tensor rows = x.select(1, 0);                // (B, 8, 8)
  return at::cat({rows.mean(2).unsqueeze(1), rows}, 1);  // (B, 9, 8)
}

// cls token = column means (does not tell the class); patch token r = row r's mean at position r, so
// the patch mean = row means / 8 (tells the class).
at::Tensor patch_informative(const at::Tensor& x) {
  const at::Tensor rows = x.select(1, 0);
  const at::Tensor patches = at::diag_embed(rows.mean(2));  // (B, 8, 8)
  return at::cat({rows.mean(1).unsqueeze(1), patches}, 1);
}

LinprobeConfig probe_config(const std::string& pool) {
  LinprobeConfig cfg;
  cfg.epochs = 10;
  cfg.batch_size = 64;
  cfg.base_lr = 0.4;
  cfg.pool = pool;
  cfg.feature_batch = 300;
  cfg.seed = 3;
  return cfg;
}

TEST(Linprobe, PoolTokensPicksClsOrMeanOfPatches) {
  const at::Tensor tokens = at::arange(2 * 4 * 3, at::kFloat).view({2, 4, 3});
  EXPECT_TRUE(at::equal(pool_tokens(tokens, "cls"), tokens.select(1, 0)));
  EXPECT_TRUE(at::allclose(pool_tokens(tokens, "mean"), tokens.narrow(1, 1, 3).mean(1)));
  EXPECT_THROW(pool_tokens(tokens, "max"), InputError);
}

TEST(Linprobe, SeparableDataReachesFullAccuracy) {
  const data::ImageSet train = bright_row_set(1600, 1), test = bright_row_set(800, 2);
  const LinprobeResult r = run_linprobe(cls_informative, train, test, eval_tf(), probe_config("cls"));
  EXPECT_GE(r.top1, 99.0);
  EXPECT_GE(r.train_top1, 99.0);
  EXPECT_EQ(r.n_train, 1600);
  EXPECT_EQ(r.n_test, 800);
  EXPECT_EQ(r.feature_dim, 8);
}

TEST(Linprobe, MeanPoolingUsesPatchTokensOnlyAndClsUsesClsOnly) {
  const data::ImageSet train = bright_row_set(1600, 1), test = bright_row_set(800, 2);
  // The cls token alone separates the classes; averaging it in with the patches would too.
  EXPECT_LE(run_linprobe(cls_informative, train, test, eval_tf(), probe_config("mean")).top1, 25.0);
  EXPECT_GE(run_linprobe(patch_informative, train, test, eval_tf(), probe_config("mean")).top1, 99.0);
  EXPECT_LE(run_linprobe(patch_informative, train, test, eval_tf(), probe_config("cls")).top1, 25.0);
}

TEST(Linprobe, RandomLabelsStayNearChance) {
  data::ImageSet train = bright_row_set(1600, 1), test = bright_row_set(800, 2);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
  train.labels = at::randint(0, kClasses, {1600}, gen, at::kLong);
  test.labels = at::randint(0, kClasses, {800}, gen, at::kLong);
  const LinprobeResult r = run_linprobe(cls_informative, train, test, eval_tf(), probe_config("cls"));
  EXPECT_LE(r.top1, 25.0);  // chance is 12.5%
  EXPECT_GE(r.top1, 3.0);
}

TEST(Linprobe, LimitsAndSeedAreHonoured) {
  const data::ImageSet train = bright_row_set(1600, 1), test = bright_row_set(800, 2);
  LinprobeConfig cfg = probe_config("cls");
  cfg.train_limit = 500;
  cfg.test_limit = 300;
  cfg.base_lr = 0.05;  // a slow probe, so the seed visibly matters
  cfg.epochs = 2;
  int64_t calls = 0;
  const FeatureFn counted = [&](const at::Tensor& x) {
    ++calls;
    return cls_informative(x);
  };
  const LinprobeResult a = run_linprobe(counted, train, test, eval_tf(), cfg);
  EXPECT_EQ(a.n_train, 500);
  EXPECT_EQ(a.n_test, 300);
  EXPECT_EQ(calls, 2 + 1);  // chunks of 300: 500 train images in 2, 300 test images in 1
  const LinprobeResult b = run_linprobe(cls_informative, train, test, eval_tf(), cfg);
  EXPECT_EQ(a.top1, b.top1);
  EXPECT_EQ(a.train_top1, b.train_top1);
}

TEST(Linprobe, BadConfigIsInputError) {
  const data::ImageSet train = bright_row_set(100, 1), test = bright_row_set(50, 2);
  LinprobeConfig cfg = probe_config("max");
  EXPECT_THROW(run_linprobe(cls_informative, train, test, eval_tf(), cfg), InputError);
  cfg = probe_config("cls");
  cfg.epochs = 0;
  EXPECT_THROW(run_linprobe(cls_informative, train, test, eval_tf(), cfg), InputError);
}

}  // namespace
}  // namespace semaim::eval

// Tests of the per-sample transforms: RandomResizedCrop parameters and placement, flip, eval normalization.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/data/transforms.h"

namespace semaim::data {
namespace {

// (1, 16, 16) with pixel (r, c) = r * 16 + c: every value distinct, so values reveal positions.
at::Tensor distinct_image() { return at::arange(256, at::kInt).to(at::kByte).view({1, 16, 16}); }

// Undoes normalization back to uint8 values. x: (C, H, W) float -> (C, H, W) int
at::Tensor denormalize(const at::Tensor& x, double mean, double std) {
  return ((x * std + mean) * 255.0).round().to(at::kInt);
}

TEST(Transform, RandomOutputHasOutSizeAndFloatType) {
  AugmentConfig cfg;
  cfg.out_size = 20;
  std::mt19937_64 rng(1);
  const at::Tensor img = at::randint(0, 256, {3, 28, 28}, at::kByte);
  cfg.mean = {0.5, 0.4, 0.3};
  cfg.std = {0.2, 0.2, 0.2};
  const at::Tensor out = transform_sample(img, cfg, rng);
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{3, 20, 20}));
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
}

TEST(Transform, EvalTransformOfSameSizeIsPlainNormalization) {
  AugmentConfig cfg;
  cfg.random = false;
  std::mt19937_64 rng(3);
  const at::Tensor img = at::randint(0, 256, {1, 28, 28}, at::kByte);
  const at::Tensor out = transform_sample(img, cfg, rng);
  const at::Tensor expected = (img.to(at::kFloat) / 255.0 - 0.2860) / 0.3530;
  EXPECT_TRUE(at::allclose(out, expected, 1e-5, 1e-6));
  // The batch form is the same transform.
  const at::Tensor batch = transform_eval_batch(img.unsqueeze(0).repeat({2, 1, 1, 1}), cfg);
  EXPECT_TRUE(at::equal(batch[1], out));
}

TEST(Transform, EvalTransformCentersTheCropOfTheResizedImage) {
  AugmentConfig cfg;
  cfg.random = false;
  cfg.out_size = 8;
  cfg.mean = {0.0};
  cfg.std = {1.0};
  // A 16x8 (H x W) image: shorter side 8 stays, so the output is rows 4..11 of the image.
  const at::Tensor img = at::arange(128, at::kInt).to(at::kByte).view({1, 16, 8});
  std::mt19937_64 rng(0);
  const at::Tensor out = denormalize(transform_sample(img, cfg, rng), 0.0, 1.0);
  EXPECT_TRUE(at::equal(out, img.narrow(1, 4, 8).to(at::kInt)));
}

TEST(Transform, FlipWithProbabilityOneMirrorsColumns) {
  AugmentConfig cfg;
  cfg.scale = {1.0, 1.0};
  cfg.ratio = {1.0, 1.0};  // the crop is the whole image, so only the flip changes pixels
  const at::Tensor img = at::randint(0, 256, {1, 28, 28}, at::kByte);
  cfg.hflip = 1.0;
  std::mt19937_64 rng(5);
  const at::Tensor flipped = transform_sample(img, cfg, rng);
  cfg.hflip = 0.0;
  const at::Tensor plain = transform_sample(img, cfg, rng);
  EXPECT_TRUE(at::allclose(plain, (img.to(at::kFloat) / 255.0 - 0.2860) / 0.3530, 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(flipped, plain.flip({2})));
  EXPECT_FALSE(at::equal(flipped, plain));
}

TEST(Transform, CropParamsRespectScaleRatioAndBounds) {
  std::mt19937_64 rng(11);
  const std::array<double, 2> scale{0.2, 1.0}, ratio{3.0 / 4.0, 4.0 / 3.0};
  for (int i = 0; i < 2000; ++i) {
    const CropBox b = random_resized_crop_params(224, 224, scale, ratio, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, 224);
    ASSERT_LE(b.left + b.width, 224);
    const double area = static_cast<double>(b.height * b.width) / (224.0 * 224.0);
    // Rounding each side to whole pixels moves the area and ratio by a little.
    ASSERT_GE(area, 0.2 - 0.01);
    ASSERT_LE(area, 1.0);
    const double r = static_cast<double>(b.width) / static_cast<double>(b.height);
    ASSERT_GE(r, 0.75 * 0.98);
    ASSERT_LE(r, 4.0 / 3.0 * 1.02);
  }
}

TEST(Transform, CropFallsBackToCenteredClampedRatio) {
  std::mt19937_64 rng(0);
  // Aspect ratios of 10..20 never fit a square image with most of its area, so all 10 attempts fail.
  const CropBox b = random_resized_crop_params(16, 16, {0.9, 1.0}, {10.0, 20.0}, rng);
  EXPECT_EQ(b.width, 16);
  EXPECT_EQ(b.height, 2);  // round(16 / 10)
  EXPECT_EQ(b.top, 7);
  EXPECT_EQ(b.left, 0);
}

TEST(Transform, OutputComesFromTheDrawnCropBox) {
  AugmentConfig cfg;
  cfg.out_size = 32;  // upsampling every crop of a 16x16 image
  cfg.interpolation = "bilinear";
  cfg.hflip = 0.0;
  cfg.mean = {0.0};
  cfg.std = {1.0};
  const at::Tensor img = distinct_image();
  for (uint64_t seed = 0; seed < 50; ++seed) {
    std::mt19937_64 rng(seed), rng_copy(seed);
    const CropBox b = random_resized_crop_params(16, 16, cfg.scale, cfg.ratio, rng_copy);
    const at::Tensor out = denormalize(transform_sample(img, cfg, rng), 0.0, 1.0)[0];
    // Bilinear upsampling keeps the corner pixels and stays inside the crop's value range.
    const int64_t first = b.top * 16 + b.left, last = (b.top + b.height - 1) * 16 + (b.left + b.width - 1);
    ASSERT_EQ(out[0][0].item<int64_t>(), first) << "seed " << seed;
    ASSERT_EQ(out[31][31].item<int64_t>(), last) << "seed " << seed;
    ASSERT_GE(out.min().item<int64_t>(), first);
    ASSERT_LE(out.max().item<int64_t>(), last);
  }
}

TEST(Transform, SameSeedSameOutputDifferentSeedDifferent) {
  AugmentConfig cfg;
  const at::Tensor img = at::randint(0, 256, {1, 28, 28}, at::kByte);
  std::mt19937_64 a(42), b(42), c(43);
  const at::Tensor xa = transform_sample(img, cfg, a);
  EXPECT_TRUE(at::equal(xa, transform_sample(img, cfg, b)));
  EXPECT_FALSE(at::equal(xa, transform_sample(img, cfg, c)));
}

TEST(Transform, BadConfigIsInputError) {
  std::mt19937_64 rng(0);
  const at::Tensor img = at::zeros({1, 8, 8}, at::kByte);
  AugmentConfig cfg;
  cfg.interpolation = "lanczos";
  EXPECT_THROW(transform_sample(img, cfg, rng), InputError);
  cfg = AugmentConfig{};
  cfg.mean = {0.1, 0.2};
  EXPECT_THROW(transform_sample(img, cfg, rng), InputError);
  cfg = AugmentConfig{};
  cfg.scale = {0.5, 0.2};
  EXPECT_THROW(transform_sample(img, cfg, rng), InputError);
  EXPECT_THROW(transform_sample(img.to(at::kFloat), AugmentConfig{}, rng), InputError);
}

TEST(Pipeline, DefaultNamesFollowTrainOrEval) {
  AugmentConfig cfg;
  EXPECT_EQ(Pipeline::build(cfg, 1).names(),
            (std::vector<std::string>{"random_resized_crop", "hflip", "normalize"}));
  cfg.random = false;
  EXPECT_EQ(Pipeline::build(cfg, 1).names(),
            (std::vector<std::string>{"resize", "center_crop", "normalize"}));
  cfg.transforms = {"center_crop", "hflip"};
  EXPECT_EQ(Pipeline::build(cfg, 3).names(), cfg.transforms);
}

TEST(Pipeline, ResizeThenCenterCropIsTorchvisionsEvalGeometry) {
  AugmentConfig cfg;
  cfg.out_size = 224;
  cfg.eval_crop_pct = 0.875;  // Resize(256) + CenterCrop(224)
  cfg.random = false;
  cfg.mean = {0.5};
  cfg.std = {0.5};
  std::mt19937_64 rng(0);
  const Geometry g = Pipeline::build(cfg, 3).plan(375, 500, rng);
  EXPECT_EQ(g.resize_h, 256);
  EXPECT_EQ(g.resize_w, 341);  // int(256 * 500 / 375)
  EXPECT_EQ(g.window.top, 16);
  EXPECT_EQ(g.window.left, 58);  // round(58.5) = 58, half to even
  EXPECT_EQ(g.window.height, 224);
}

TEST(Pipeline, UnknownMisorderedOrIncompleteNamesAreInputErrors) {
  AugmentConfig cfg;
  auto build = [&](std::vector<std::string> names) {
    cfg.transforms = std::move(names);
    return Pipeline::build(cfg, 1);
  };
  auto expect_error = [&](std::vector<std::string> names, const std::string& needle) {
    try {
      build(names);
      ADD_FAILURE() << "accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({"random_resized_crop", "color_jitter"}, "unknown transform 'color_jitter'");
  expect_error({"hflip", "random_resized_crop"}, "out of order");
  expect_error({"resize", "normalize"}, "does not end at out_size");
  expect_error({"random_resized_crop", "center_crop"}, "does not end at out_size");
  expect_error({"random_resized_crop", "normalize", "normalize"}, "normalize listed twice");
}

TEST(Pipeline, WithoutNormalizeTheOutputIsPixelsOver255) {
  AugmentConfig cfg;
  cfg.out_size = 2;
  cfg.transforms = {"center_crop"};
  const at::Tensor img = at::tensor({0, 51, 255, 102}, at::kByte).view({1, 2, 2});
  std::mt19937_64 rng(0);
  const at::Tensor out = transform_sample(img, cfg, rng);
  EXPECT_TRUE(at::allclose(out, img.to(at::kFloat) / 255.0));
}

}  // namespace
}  // namespace semaim::data

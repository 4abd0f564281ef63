// Pixel targets (method.md §7) against values worked out by hand.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>

#include <cmath>

#include "semaim/core/errors.h"
#include "semaim/models/targets.h"

namespace {

namespace m = semaim::models;

TEST(Targets, GaussianKernel3Sigma1MatchesHandValues) {
  // 1D weights e^{-x^2/2} at x = -1, 0, 1: {e^{-1/2}, 1, e^{-1/2}} / (1 + 2 e^{-1/2}).
  const double a = std::exp(-0.5), s = 1.0 + 2.0 * a;
  const double corner = a * a / (s * s), edge = a / (s * s), centre = 1.0 / (s * s);
  // Decimal check of the same numbers: 0.0751136, 0.1238414, 0.2041800.
  EXPECT_NEAR(corner, 0.0751136, 1e-7);
  EXPECT_NEAR(edge, 0.1238414, 1e-7);
  EXPECT_NEAR(centre, 0.2041800, 1e-7);
  auto k = m::gaussian_kernel2d(3, 1.0, at::kDouble);
  ASSERT_EQ(k.sizes(), (at::IntArrayRef{3, 3}));
  auto want =
      at::tensor({corner, edge, corner, edge, centre, edge, corner, edge, corner}, at::kDouble).view({3, 3});
  EXPECT_LE((k - want).abs().max().item<double>(), 1e-15);
  EXPECT_NEAR(m::gaussian_kernel2d(9, 1.0, at::kDouble).sum().item<double>(), 1.0, 1e-15);
  EXPECT_EQ(m::gaussian_kernel2d(9, 1.0).scalar_type(), at::kFloat);
}

TEST(Targets, BlurOfDeltaIsTheKernelPerChannel) {
  auto imgs = at::zeros({1, 2, 11, 11}, at::kDouble);
  imgs[0][0][5][5] = 1.0;  // channel 0: centre
  imgs[0][1][4][6] = 2.0;  // channel 1: elsewhere, scaled
  auto out = m::gaussian_blur(imgs, 9, 1.0);
  auto k = m::gaussian_kernel2d(9, 1.0, at::kDouble);
  ASSERT_EQ(out.sizes(), imgs.sizes());
  EXPECT_LE((out[0][0].narrow(0, 1, 9).narrow(1, 1, 9) - k).abs().max().item<double>(), 1e-15);
  EXPECT_NEAR(out[0][0].sum().item<double>(), 1.0, 1e-14);  // nothing leaks into channel 1 or out of frame
  EXPECT_LE((out[0][1].narrow(0, 0, 9).narrow(1, 2, 9) - 2.0 * k).abs().max().item<double>(), 1e-15);
  EXPECT_NEAR(out[0][1].sum().item<double>(), 2.0, 1e-14);
}

TEST(Targets, BlurZeroPadsAtTheBorder) {
  auto imgs = at::zeros({1, 1, 5, 5}, at::kDouble);
  imgs[0][0][0][0] = 1.0;
  auto out = m::gaussian_blur(imgs, 3, 1.0);
  auto k = m::gaussian_kernel2d(3, 1.0, at::kDouble);
  // Only the lower-right 2x2 of the kernel lands in the image; the rest falls on zero padding.
  EXPECT_LE((out[0][0].narrow(0, 0, 2).narrow(1, 0, 2) - k.narrow(0, 1, 2).narrow(1, 1, 2))
                .abs()
                .max()
                .item<double>(),
            1e-15);
  EXPECT_NEAR(out.sum().item<double>(), k.narrow(0, 1, 2).narrow(1, 1, 2).sum().item<double>(), 1e-15);
}

TEST(Targets, BlurIdentityForTrivialKernelAndRejectsEvenSize) {
  auto imgs = at::randn({2, 3, 8, 8});
  EXPECT_TRUE(at::equal(m::gaussian_blur(imgs, 1, 1.0), imgs));
  EXPECT_TRUE(at::equal(m::gaussian_blur(imgs, 9, 0.0), imgs));
  EXPECT_THROW(m::gaussian_blur(imgs, 4, 1.0), semaim::InputError);
  EXPECT_THROW(m::gaussian_blur(imgs, at::ones({3, 4})), semaim::InputError);
}

TEST(Targets, PatchifyOrdersRowColChannel) {
  // value = 100*c + 10*y + x; 2 channels, 4x6 image, patch 2 -> grid 2x3.
  auto imgs = at::empty({1, 2, 4, 6}, at::kDouble);
  for (int c = 0; c < 2; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 6; ++x) imgs[0][c][y][x] = 100 * c + 10 * y + x;
  auto t = m::patchify(imgs, 2);
  ASSERT_EQ(t.sizes(), (at::IntArrayRef{1, 6, 8}));
  // Patch j = row*3 + col = 1*3 + 2 = 5 covers y in {2,3}, x in {4,5}; element (r, q, c) at (r*2 + q)*2 + c.
  auto want = at::tensor({24., 124., 25., 125., 34., 134., 35., 135.}, at::kDouble);
  EXPECT_TRUE(at::equal(t[0][5], want));
  auto first = at::tensor({0., 100., 1., 101., 10., 110., 11., 111.}, at::kDouble);
  EXPECT_TRUE(at::equal(t[0][0], first));
  EXPECT_TRUE(at::equal(m::unpatchify(t, 2, 2, 2, 3), imgs));
  EXPECT_THROW(m::patchify(imgs, 4), semaim::InputError);  // 6 is not a multiple of 4
  EXPECT_THROW(m::unpatchify(t, 2, 2, 3, 3), semaim::InputError);
}

TEST(Targets, NormalizePatchesUsesUnbiasedVariance) {
  auto t = at::tensor({1., 2., 3., 4.}, at::kDouble).view({1, 1, 4});
  // mean 2.5; unbiased variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3.
  const double sd = std::sqrt(5.0 / 3.0 + 1e-6);
  auto want = at::tensor({-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd}, at::kDouble).view({1, 1, 4});
  EXPECT_LE((m::normalize_patches(t) - want).abs().max().item<double>(), 1e-15);
}

TEST(Targets, PixelLossL2AndL1) {
  auto pred = at::tensor({1., 2.}, at::kDouble).view({1, 1, 2});
  auto target = at::tensor({0., 4.}, at::kDouble).view({1, 1, 2});
  EXPECT_DOUBLE_EQ(m::pixel_loss(pred, target, "l2").item<double>(), 2.5);  // (1 + 4) / 2
  EXPECT_DOUBLE_EQ(m::pixel_loss(pred, target, "l1").item<double>(), 1.5);  // (1 + 2) / 2
  EXPECT_THROW(m::pixel_loss(pred, target, "huber"), semaim::InputError);
  EXPECT_THROW(m::pixel_loss(pred, target.view({1, 2, 1}), "l2"), semaim::InputError);
}

TEST(Targets, PixelTargetComposesBlurPatchifyNormalize) {
  auto imgs = at::randn({2, 3, 8, 8}, at::kDouble);
  m::TargetConfig cfg;
  cfg.blur_kernel = 3;
  auto want = m::normalize_patches(m::patchify(m::gaussian_blur(imgs, 3, 1.0), 4));
  EXPECT_LE((m::pixel_target(imgs, 4, cfg) - want).abs().max().item<double>(), 1e-14);
  cfg.norm_pix = false;
  cfg.blur_kernel = 1;
  EXPECT_TRUE(at::equal(m::pixel_target(imgs, 4, cfg), m::patchify(imgs, 4)));
}

TEST(Targets, PixelTargetIgnoresAutocastAndGrad) {
  auto imgs = at::randn({2, 3, 8, 8}).requires_grad_();
  m::TargetConfig cfg;
  auto plain = m::pixel_target(imgs, 4, cfg);
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
  auto under_autocast = m::pixel_target(imgs, 4, cfg);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  EXPECT_EQ(under_autocast.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(under_autocast, plain));
  EXPECT_FALSE(plain.requires_grad());
}

}  // namespace

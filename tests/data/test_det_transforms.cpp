// Large-scale jitter and ViTDet's test resize: detectron2's ResizeScale / ResizeShortestEdge sizes, the scale
// range, crop and pad sizes, and boxes and masks following the image through the record (transform_target).
#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "input_error.h"
#include "semaim/config/config.h"
#include "semaim/data/config_keys.h"
#include "semaim/data/det_transforms.h"
#include "semaim/data/settings.h"

namespace {
using semaim::data::Geometry;
using Size = std::pair<int64_t, int64_t>;
using semaim::data::LsjConfig;

Geometry plan_with(const semaim::data::GeometryTransform& t, int64_t h, int64_t w, std::mt19937_64& rng) {
  Geometry g;
  g.src_h = g.resize_h = h;
  g.src_w = g.resize_w = w;
  g.box = g.window = semaim::data::CropBox{0, 0, h, w};
  t.plan(g, rng);
  return g;
}

TEST(DetTransforms, SizesFollowDetectron2) {
  // ResizeScale: 480x640 into a 512 square (1024 * 0.5): factor 0.8.
  EXPECT_EQ(semaim::data::resize_scale_size(480, 640, 1024, 0.5), (Size{384, 512}));
  // np.round halves to even: 3 * 0.5 = 1.5 -> 2, 5 * 0.5 = 2.5 -> 2.
  EXPECT_EQ(semaim::data::resize_scale_size(3, 5, 10, 0.25), (Size{2, 2}));
  // ResizeShortestEdge(1024, max_size 1024): the longer side becomes 1024.
  EXPECT_EQ(semaim::data::shortest_edge_size(480, 640, 1024, 1024), (Size{768, 1024}));
  EXPECT_EQ(semaim::data::shortest_edge_size(640, 427, 1024, 1024), (Size{1024, 683}));
  EXPECT_EQ(semaim::data::shortest_edge_size(600, 800, 600, 1333), (Size{600, 800}));
}

TEST(DetTransforms, LargeScaleJitterRespectsScaleRangeCropAndPad) {
  const LsjConfig cfg{64, {0.1, 2.0}};
  const auto lsj = semaim::data::make_large_scale_jitter(cfg);
  std::mt19937_64 rng(3);
  double lo = 10, hi = 0;
  for (int k = 0; k < 400; ++k) {
    const Geometry g = plan_with(*lsj, 90, 120, rng);  // the width decides the factor
    const double scale = static_cast<double>(g.resize_w) / 64.0;
    ASSERT_GE(scale, 0.1 - 1.0 / 64);
    ASSERT_LE(scale, 2.0 + 1.0 / 64);
    lo = std::min(lo, scale);
    hi = std::max(hi, scale);
    EXPECT_NEAR(static_cast<double>(g.resize_h) / static_cast<double>(g.resize_w), 0.75,
                0.5 / g.resize_w + 0.02);
    EXPECT_EQ(g.window.height, std::min<int64_t>(64, g.resize_h));
    EXPECT_EQ(g.window.width, std::min<int64_t>(64, g.resize_w));
    EXPECT_GE(g.window.top, 0);
    EXPECT_GE(g.window.left, 0);
    EXPECT_LE(g.window.top + g.window.height, g.resize_h);
    EXPECT_LE(g.window.left + g.window.width, g.resize_w);
    EXPECT_EQ(g.out_h(), 64);
    EXPECT_EQ(g.out_w(), 64);
    if (g.resize_h > 64) {  // one uniform places the window on both axes
      const double fy = static_cast<double>(g.window.top) / static_cast<double>(g.resize_h - 64);
      const double fx = static_cast<double>(g.window.left) / static_cast<double>(g.resize_w - 64);
      EXPECT_NEAR(fy, fx, 1.0 / static_cast<double>(g.resize_h - 64) + 1e-9);
    }
  }
  EXPECT_LT(lo, 0.2);
  EXPECT_GT(hi, 1.9);
}

TEST(DetTransforms, ResizeFitPadsToTheSquare) {
  const auto fit = semaim::data::make_resize_fit(64);
  std::mt19937_64 rng(0);
  const Geometry g = plan_with(*fit, 30, 40, rng);
  EXPECT_EQ(g.resize_h, 48);
  EXPECT_EQ(g.resize_w, 64);
  EXPECT_EQ(g.window.height, 48);
  EXPECT_EQ(g.out_h(), 64);
  EXPECT_EQ(g.out_w(), 64);
}

// A pipeline that only renders a given record (no geometry of its own, no normalization): x / 255 per
// channel.
semaim::data::Pipeline render_pipeline(int64_t side) {
  semaim::data::AugmentConfig cfg;
  cfg.out_size = side;
  cfg.transforms = {"center_crop"};
  cfg.interpolation = "bilinear";
  return semaim::data::Pipeline::build(cfg, 3);
}

// A white rectangle on black, its box and mask, through random LSJ records (and flips): interior pixels of
// the transformed mask are white in the transformed image, pixels well outside it black, and the transformed
// box is the mask's extent to within a pixel.
TEST(DetTransforms, BoxesAndMasksFollowTheImage) {
  const int64_t h = 60, w = 80, side = 48;
  cv::Mat img(static_cast<int>(h), static_cast<int>(w), CV_8UC3, cv::Scalar(0, 0, 0));
  cv::rectangle(img, cv::Rect(20, 10, 30, 25), cv::Scalar(255, 255, 255), cv::FILLED);  // x 20..49, y 10..34
  semaim::data::Target t;
  t.boxes = at::tensor({20.f, 10.f, 50.f, 35.f}).reshape({1, 4});
  t.box_classes = at::tensor({3}, at::kLong);
  t.masks = at::zeros({1, h, w}, at::kByte);
  t.masks[0].slice(0, 10, 35).slice(1, 20, 50).fill_(1);
  const auto lsj = semaim::data::make_large_scale_jitter({side, {0.3, 2.0}});
  const auto pipeline = render_pipeline(side);
  std::mt19937_64 rng(11);
  int kept = 0;
  for (int k = 0; k < 40; ++k) {
    Geometry g = plan_with(*lsj, h, w, rng);
    g.flipped = k % 2 == 1;
    at::Tensor out = at::empty({3, side, side});
    pipeline.finish(img, g.box, g, rng, out.data_ptr<float>());
    const auto tt = semaim::data::transform_target(g, t, "rectangle");
    if (tt.boxes.size(0) == 0) {
      EXPECT_EQ(tt.dropped_boxes, 1);
      continue;
    }
    ++kept;
    const at::Tensor m = tt.masks[0].to(at::kFloat);
    // 3x3 neighbourhood all inside / all outside the mask
    const at::Tensor pooled = at::max_pool2d(m.unsqueeze(0), 3, 1, 1).squeeze(0);
    const at::Tensor inner = -at::max_pool2d(-m.unsqueeze(0), 3, 1, 1).squeeze(0);
    const at::Tensor gray = out[0];
    EXPECT_TRUE((gray.masked_select(inner > 0.5) > 0.99).all().item<bool>()) << "record " << k;
    EXPECT_TRUE((gray.masked_select(pooled < 0.5) < 0.01).all().item<bool>()) << "record " << k;
    const at::Tensor rows = m.sum(1).nonzero(), cols = m.sum(0).nonzero();
    if (rows.size(0) == 0) continue;  // a box with area but no pixel center: drop_vanished_instances' case
    const float* b = tt.boxes.data_ptr<float>();
    EXPECT_NEAR(b[0], cols.min().item<float>(), 1.0f) << "record " << k;
    EXPECT_NEAR(b[2], cols.max().item<float>() + 1, 1.0f) << "record " << k;
    EXPECT_NEAR(b[1], rows.min().item<float>(), 1.0f) << "record " << k;
    EXPECT_NEAR(b[3], rows.max().item<float>() + 1, 1.0f) << "record " << k;
  }
  EXPECT_GT(kept, 10);
}

TEST(DetTransforms, VanishedInstancesAreDroppedAndCounted) {
  // A crop that leaves the second box outside the window: transform_target drops it.
  Geometry g;
  g.src_h = g.src_w = 40;
  g.box = {0, 0, 40, 40};
  g.resize_h = g.resize_w = 40;
  g.window = {0, 0, 20, 20};
  g.pad_h = g.pad_w = 32;
  semaim::data::Target t;
  t.boxes =
      at::tensor({2.f, 2.f, 10.f, 10.f, 25.f, 25.f, 30.f, 30.f, 12.f, 12.f, 12.4f, 12.4f}).reshape({3, 4});
  t.box_classes = at::tensor({0, 1, 2}, at::kLong);
  t.masks = at::zeros({3, 40, 40}, at::kByte);
  t.masks[0].slice(0, 2, 10).slice(1, 2, 10).fill_(1);
  t.masks[1].slice(0, 25, 30).slice(1, 25, 30).fill_(1);
  auto out = semaim::data::transform_target(g, t, "crop");
  EXPECT_EQ(out.dropped_boxes, 1);
  ASSERT_EQ(out.boxes.size(0), 2);
  EXPECT_EQ(out.masks.sizes(), (at::IntArrayRef{2, 32, 32}));
  // The third box keeps an area of 0.16 px but its mask has no pixel: dropped by drop_vanished_instances.
  semaim::data::drop_vanished_instances(out);
  EXPECT_EQ(out.dropped_boxes, 2);
  ASSERT_EQ(out.boxes.size(0), 1);
  EXPECT_EQ(out.box_classes[0].item<int64_t>(), 0);
  EXPECT_EQ(out.masks.size(0), 1);
}

TEST(DetTransforms, LsjConfigFromKeysIsValidated) {
  semaim::config::Schema schema;
  semaim::data::register_config_keys(schema);
  auto cfg = semaim::config::Config::defaults(schema);
  const LsjConfig l = semaim::data::lsj_config(cfg);
  EXPECT_EQ(l.size, 1024);
  EXPECT_DOUBLE_EQ(l.scale[0], 0.1);
  EXPECT_DOUBLE_EQ(l.scale[1], 2.0);
  semaim::test::expect_input_error([] { semaim::data::validate_lsj({64, {1.5, 0.5}}); }, "data.lsj_scale");
  semaim::test::expect_input_error([] { semaim::data::validate_lsj({0, {0.1, 2.0}}); }, "data.lsj_size");
}

}  // namespace

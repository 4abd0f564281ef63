// Box utilities of the Mask R-CNN heads held to detectron2's formulas on hand-computed cases: IoU, Box2BoxTransform,
// Matcher, subsample_labels, anchors, the pooler's level assignment and pooling, and paste_masks.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/roi_align/roi_align.h"
#include "semaim/models/heads/box_ops.h"
#include "semaim/models/heads/roi_heads.h"

namespace {
namespace det = semaim::models::det;

at::Tensor boxes(std::vector<float> v) { return at::tensor(v, at::kFloat).view({-1, 4}); }
at::Tensor one_roi(std::vector<float> v) { return at::tensor(v, at::kFloat).view({1, 5}); }

TEST(BoxOps, IouOfHandMadeBoxes) {
  const at::Tensor a = boxes({0, 0, 10, 10, 0, 0, 0, 0});
  const at::Tensor b = boxes({5, 0, 15, 10, 20, 20, 30, 30, 0, 0, 10, 10});
  const at::Tensor iou = det::box_iou(a, b);
  ASSERT_EQ(iou.sizes(), at::IntArrayRef({2, 3}));
  EXPECT_NEAR(iou[0][0].item<float>(), 50.f / 150.f, 1e-6);
  EXPECT_EQ(iou[0][1].item<float>(), 0.f);
  EXPECT_EQ(iou[0][2].item<float>(), 1.f);
  EXPECT_EQ(iou[1].sum().item<float>(), 0.f);  // an empty box matches nothing, without NaN
}

TEST(BoxOps, ClipAndNonempty) {
  const at::Tensor c = det::clip_boxes(boxes({-5, -2, 30, 50, 12, 3, 40, 4}), {20, 25});
  EXPECT_TRUE(at::equal(c, boxes({0, 0, 25, 20, 12, 3, 25, 4})));
  const at::Tensor keep = det::nonempty_boxes(boxes({0, 0, 1, 1, 0, 0, 0, 5, 0, 0, 2, 2}), 1.0);
  EXPECT_TRUE(at::equal(keep.to(at::kLong), at::tensor({0, 0, 1}, at::kLong)));
}

TEST(Box2BoxTransform, EncodeDecodeRoundTrip) {
  at::manual_seed(0);
  det::Box2BoxTransform t{{10, 10, 5, 5}};
  const at::Tensor xy = at::rand({50, 2}) * 100, wh = at::rand({50, 2}) * 50 + 1;
  const at::Tensor src = at::cat({xy, xy + wh}, 1);
  const at::Tensor xy2 = at::rand({50, 2}) * 100, wh2 = at::rand({50, 2}) * 50 + 1;
  const at::Tensor dst = at::cat({xy2, xy2 + wh2}, 1);
  const at::Tensor d = t.get_deltas(src, dst);
  // The x delta is wx * centre offset / source width.
  const float cx_s = (src[0][0] + src[0][2]).item<float>() / 2, cx_d = (dst[0][0] + dst[0][2]).item<float>() / 2;
  EXPECT_NEAR(d[0][0].item<float>(), 10 * (cx_d - cx_s) / (src[0][2] - src[0][0]).item<float>(), 1e-4);
  EXPECT_TRUE(at::allclose(t.apply_deltas(d, src), dst, 1e-4, 1e-3));
  // Class-specific deltas (N, 4k) decode every group against the same box.
  EXPECT_TRUE(at::allclose(t.apply_deltas(at::cat({d, d}, 1), src), at::cat({dst, dst}, 1), 1e-4, 1e-3));
}

TEST(Box2BoxTransform, DecodeClampsScale) {
  det::Box2BoxTransform t;
  const at::Tensor out = t.apply_deltas(at::tensor({0.f, 0.f, 100.f, -1.f}).view({1, 4}), boxes({0, 0, 16, 16}));
  EXPECT_NEAR((out[0][2] - out[0][0]).item<float>(), 1000.f, 1e-2);  // exp(log(1000/16)) * 16
  EXPECT_NEAR((out[0][3] - out[0][1]).item<float>(), 16.f * std::exp(-1.f), 1e-4);
}

TEST(Matcher, LabelsByThresholdsAndLowQualityMatches) {
  // Two ground truths (rows) against five predictions.
  const at::Tensor q = at::tensor({0.1f, 0.75f, 0.5f, 0.2f, 0.0f,  //
                                   0.2f, 0.05f, 0.6f, 0.6f, 0.25f})
                           .view({2, 5});
  det::Matcher plain{{0.3, 0.7}, {0, -1, 1}, false};
  auto [m, l] = plain(q);
  EXPECT_TRUE(at::equal(m, at::tensor({1, 0, 1, 1, 1}, at::kLong)));
  EXPECT_TRUE(at::equal(l, at::tensor({0, 1, -1, -1, 0}, at::kChar)));
  // gt 1's best quality 0.6 is shared by predictions 2 and 3: both become positive; gt 0's best is already so.
  det::Matcher low{{0.3, 0.7}, {0, -1, 1}, true};
  auto [m2, l2] = low(q);
  EXPECT_TRUE(at::equal(l2, at::tensor({0, 1, 1, 1, 0}, at::kChar)));
  auto [m3, l3] = low(at::zeros({0, 4}));
  EXPECT_TRUE(at::equal(m3, at::zeros({4}, at::kLong)));
  EXPECT_TRUE(at::equal(l3, at::zeros({4}, at::kChar)));
}

TEST(SubsampleLabels, CountsAndFractions) {
  at::manual_seed(1);
  // 30 positives (class 1 or 2), 100 negatives (bg 3), 20 ignored.
  const at::Tensor labels =
      at::cat({at::full({15}, 1, at::kLong), at::full({15}, 2, at::kLong), at::full({100}, 3, at::kLong),
               at::full({20}, -1, at::kLong)});
  auto [pos, neg] = det::subsample_labels(labels, 64, 0.25, 3);
  EXPECT_EQ(pos.numel(), 16);
  EXPECT_EQ(neg.numel(), 48);
  EXPECT_TRUE((labels.index_select(0, pos) != 3).all().item<bool>());
  EXPECT_TRUE((labels.index_select(0, pos) != -1).all().item<bool>());
  EXPECT_TRUE((labels.index_select(0, neg) == 3).all().item<bool>());
  EXPECT_EQ(std::get<0>(at::_unique(pos)).numel(), 16);
  // Too few positives: negatives fill the rest of the batch.
  auto [pos2, neg2] = det::subsample_labels(labels, 128, 0.5, 3);
  EXPECT_EQ(pos2.numel(), 30);
  EXPECT_EQ(neg2.numel(), 98);
  // Fewer of both than asked for: all of them.
  auto [pos3, neg3] = det::subsample_labels(labels, 512, 0.25, 3);
  EXPECT_EQ(pos3.numel(), 30);
  EXPECT_EQ(neg3.numel(), 100);
}

TEST(AnchorGenerator, LevelEqualsHandComputedAnchors) {
  det::AnchorGenerator g({{32}, {64}}, {0.5, 1.0, 2.0}, {4, 8}, 0.0);
  EXPECT_EQ(g.num_cell_anchors(), 3);
  const auto a = g.grid_anchors({{2, 3}, {1, 1}}, at::kCPU);
  ASSERT_EQ(a[0].sizes(), at::IntArrayRef({18, 4}));
  ASSERT_EQ(a[1].sizes(), at::IntArrayRef({3, 4}));
  const double w05 = std::sqrt(1024 / 0.5), h05 = 0.5 * w05;
  std::vector<float> expect;
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (auto [w, h] : {std::pair{w05, h05}, std::pair{32.0, 32.0}, std::pair{std::sqrt(1024 / 2.0), 2 * std::sqrt(1024 / 2.0)}})
        expect.insert(expect.end(), {static_cast<float>(4 * x - w / 2), static_cast<float>(4 * y - h / 2),
                                     static_cast<float>(4 * x + w / 2), static_cast<float>(4 * y + h / 2)});
  EXPECT_TRUE(at::allclose(a[0], boxes(expect), 0, 1e-4));
  EXPECT_TRUE(at::allclose(a[1][1], at::tensor({-32.f, -32.f, 32.f, 32.f})));
}

TEST(RoiPooler, AssignsLevelsByBoxSize) {
  // sqrt(area) 224 -> canonical level 4; halving / doubling moves one level; clamped to [2, 5].
  const at::Tensor b = boxes({0, 0, 224, 224, 0, 0, 112, 112, 0, 0, 448, 448, 0, 0, 8, 8, 0, 0, 2000, 2000, 0, 0, 111, 111});
  const at::Tensor l = det::assign_boxes_to_levels(b, 2, 5);
  EXPECT_TRUE(at::equal(l, at::tensor({2, 1, 3, 0, 3, 0}, at::kLong)));
}

TEST(RoiPooler, PoolsEachBoxFromItsLevel) {
  at::manual_seed(2);
  const std::vector<at::Tensor> feats{at::randn({2, 3, 32, 32}), at::randn({2, 3, 16, 16}), at::randn({2, 3, 8, 8}),
                                      at::randn({2, 3, 4, 4})};
  det::RoiPooler pooler(7, {4, 8, 16, 32});
  const std::vector<at::Tensor> b{boxes({0, 0, 20, 20, 10, 10, 120, 120}), boxes({5, 5, 125, 125})};
  const at::Tensor out = pooler.forward(feats, b);
  ASSERT_EQ(out.sizes(), at::IntArrayRef({3, 3, 7, 7}));
  // 20 px -> level 2 (p2, stride 4); 110 and 120 px -> level 3 (p3, stride 8).
  const at::Tensor r0 = semaim::kernels::roi_align(feats[0], one_roi({0, 0, 0, 20, 20}), 0.25, 7, 7, 0, true);
  const at::Tensor r2 = semaim::kernels::roi_align(feats[1], one_roi({1, 5, 5, 125, 125}), 0.125, 7, 7, 0, true);
  EXPECT_TRUE(at::allclose(out[0], r0[0]));
  EXPECT_TRUE(at::allclose(out[2], r2[0]));
}

// detectron2 _do_paste_mask written out pixel by pixel: bilinear sampling with zero padding at the pixel centre.
float paste_reference(const at::Tensor& mask, const float* b, int64_t y, int64_t x) {
  const int64_t m = mask.size(0);
  const float u = ((x + 0.5f - b[0]) / (b[2] - b[0]) * 2 - 1 + 1) * m / 2 - 0.5f;
  const float v = ((y + 0.5f - b[1]) / (b[3] - b[1]) * 2 - 1 + 1) * m / 2 - 0.5f;
  const auto x0 = static_cast<int64_t>(std::floor(u)), y0 = static_cast<int64_t>(std::floor(v));
  float s = 0;
  for (int64_t dy = 0; dy < 2; ++dy)
    for (int64_t dx = 0; dx < 2; ++dx) {
      const int64_t xi = x0 + dx, yi = y0 + dy;
      if (xi < 0 || yi < 0 || xi >= m || yi >= m) continue;
      s += (dx ? u - x0 : 1 - (u - x0)) * (dy ? v - y0 : 1 - (v - y0)) * mask[yi][xi].item<float>();
    }
  return s;
}

TEST(PasteMasks, EqualsDetectron2Formula) {
  at::manual_seed(3);
  const at::Tensor masks = at::rand({3, 1, 6, 6});
  const std::vector<float> bv{2.3f, 4.1f, 17.8f, 15.2f, -3.f, 10.f, 9.5f, 30.f, 12.f, 1.f, 13.f, 2.5f};
  const at::Tensor out = det::paste_masks(masks, boxes(bv), 24, 20, 0.5);
  ASSERT_EQ(out.sizes(), at::IntArrayRef({3, 24, 20}));
  ASSERT_EQ(out.scalar_type(), at::kBool);
  int64_t compared = 0;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t y = 0; y < 24; ++y)
      for (int64_t x = 0; x < 20; ++x) {
        const float p = paste_reference(masks[i][0], &bv[4 * i], y, x);
        if (std::abs(p - 0.5f) < 1e-5f) continue;  // rounding may decide a value this close to the threshold
        EXPECT_EQ(out[i][y][x].item<bool>(), p >= 0.5f) << i << " " << y << " " << x;
        ++compared;
      }
  EXPECT_GT(compared, 1400);
  EXPECT_GT(out.sum().item<int64_t>(), 0);
}

}  // namespace

// ViTDet's RoI heads: detectron2's key names and inits, the three losses, inference's score threshold, per-class
// NMS and top-k, and a tiny overfit of RPN + RoI heads on fixed random features that then finds the boxes.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include <torch/optim/sgd.h>

#include "semaim/core/errors.h"
#include "semaim/models/heads/roi_heads.h"
#include "semaim/models/heads/rpn.h"

namespace {
using semaim::models::RoiHeads;
using semaim::models::RoiHeadsConfig;
namespace det = semaim::models::det;

at::Tensor boxes(std::vector<float> v) { return at::tensor(v, at::kFloat).view({-1, 4}); }

RoiHeadsConfig tiny(int64_t classes = 3) {
  RoiHeadsConfig c;
  c.num_classes = classes;
  c.in_channels = 8;
  c.conv_dim = 8;
  c.fc_dim = 32;
  c.batch_size_per_image = 64;
  return c;
}

// p2..p5 (or p6) of an n-image 128 x 128 batch.
std::vector<at::Tensor> pyramid(int64_t n, int64_t channels, int64_t levels = 4) {
  std::vector<at::Tensor> f;
  for (int64_t l = 0; l < levels; ++l) f.push_back(at::randn({n, channels, 32 >> l, 32 >> l}));
  return f;
}

det::ImageTargets two_objects(int64_t h, int64_t w) {
  det::ImageTargets t;
  t.boxes = boxes({10, 12, 50, 60, 70, 60, 120, 110});
  t.classes = at::tensor({0, 1}, at::kLong);
  t.masks = at::zeros({2, h, w}, at::kByte);
  t.masks[0].slice(0, 12, 60).slice(1, 10, 50).fill_(1);
  t.masks[1].slice(0, 70, 100).slice(1, 70, 120).fill_(1);  // a mask smaller than its box
  return t;
}

TEST(RoiHeads, ParameterNamesFollowDetectron2) {
  RoiHeads m(RoiHeadsConfig{});
  std::set<std::string> keys;
  for (const auto& p : m->named_parameters()) keys.insert(p.key());
  for (const char* k : {"box_head.conv1.weight", "box_head.conv1.norm.weight", "box_head.conv1.norm.bias",
                        "box_head.conv4.weight", "box_head.fc1.weight", "box_head.fc1.bias",
                        "box_predictor.cls_score.weight", "box_predictor.bbox_pred.bias",
                        "mask_head.mask_fcn1.weight", "mask_head.mask_fcn4.norm.bias", "mask_head.deconv.weight",
                        "mask_head.deconv.bias", "mask_head.predictor.weight", "mask_head.predictor.bias"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_FALSE(keys.count("box_head.conv1.bias"));  // the LN convs have no bias
  EXPECT_EQ(keys.size(), 4u * 3 + 2 + 4 + 4 * 3 + 4);
  EXPECT_EQ(m->box_predictor->cls_score->weight.size(0), 81);
  EXPECT_EQ(m->box_predictor->bbox_pred->weight.size(0), 320);
  EXPECT_EQ(m->box_head->fc1->weight.size(1), 256 * 7 * 7);
  EXPECT_NEAR(m->box_predictor->cls_score->weight.std().item<double>(), 0.01, 1e-3);
  EXPECT_NEAR(m->box_predictor->bbox_pred->weight.std().item<double>(), 0.001, 1e-4);
  // c2_msra_fill: std sqrt(2 / fan_out) = sqrt(2 / (256 * 9)).
  EXPECT_NEAR(m->mask_head->mask_fcns[0]->weight.std().item<double>(), std::sqrt(2.0 / (256 * 9)), 1e-3);
}

TEST(RoiHeads, ChannelLayerNormNormalizesOverChannels) {
  semaim::models::ChannelLayerNorm ln(6);
  const at::Tensor x = at::randn({2, 6, 3, 4}) * 3 + 1;
  const at::Tensor y = ln->forward(x);
  const at::Tensor ref = at::layer_norm(x.permute({0, 2, 3, 1}), {6}, {}, {}, 1e-6).permute({0, 3, 1, 2});
  EXPECT_TRUE(at::allclose(y, ref, 1e-5, 1e-5));
}

TEST(RoiHeads, TrainingLossesFiniteWithAllKeys) {
  at::manual_seed(0);
  RoiHeads m(tiny());
  m->train();
  const auto feats = pyramid(2, 8);
  const std::vector<at::Tensor> props{boxes({0, 0, 40, 40, 60, 60, 128, 128}),
                                      at::zeros({0, 4})};
  std::vector<det::ImageTargets> t{two_objects(128, 128), two_objects(128, 128)};
  t[1].boxes = at::zeros({0, 4}), t[1].classes = at::zeros({0}, at::kLong), t[1].masks = at::zeros({0, 128, 128}, at::kByte);
  const auto out = m->forward(feats, props, {{128, 128}, {128, 128}}, &t);
  EXPECT_TRUE(out.detections.empty());
  ASSERT_EQ(out.losses.size(), 3u);
  at::Tensor total = at::zeros({});
  for (const char* k : {"loss_cls", "loss_box_reg", "loss_mask"}) {
    ASSERT_TRUE(out.losses.count(k)) << k;
    EXPECT_TRUE(std::isfinite(out.losses.at(k).item<double>())) << k;
    total = total + out.losses.at(k);
  }
  // At init the classifier is near uniform over K + 1 = 4 classes and the mask logits near 0.
  EXPECT_NEAR(out.losses.at("loss_cls").item<double>(), std::log(4.0), 0.05);
  EXPECT_NEAR(out.losses.at("loss_mask").item<double>(), std::log(2.0), 0.05);
  EXPECT_GT(out.losses.at("loss_box_reg").item<double>(), 0.0);
  total.backward();
  EXPECT_GT(m->mask_head->predictor->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(m->box_head->convs[0]->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(RoiHeads, TrainingNeedsMasksWhenMaskOn) {
  RoiHeads m(tiny());
  m->train();
  std::vector<det::ImageTargets> t{two_objects(128, 128)};
  t[0].masks = at::Tensor();
  EXPECT_THROW(m->forward(pyramid(1, 8), {at::zeros({0, 4})}, {{128, 128}}, &t), semaim::InputError);
}

TEST(RoiHeads, InferenceScoreThresholdPerClassNmsAndTopK) {
  RoiHeads m(tiny());
  m->eval();
  torch::NoGradGuard ng;
  // Zero weights: every RoI gets probabilities (0.6, 0.3, 0.04 | bg 0.06) and no box change.
  m->box_predictor->cls_score->weight.zero_();
  m->box_predictor->cls_score->bias.copy_(at::log(at::tensor({0.6f, 0.3f, 0.04f, 0.06f})));
  m->box_predictor->bbox_pred->weight.zero_();
  m->box_predictor->bbox_pred->bias.zero_();
  // A and A' overlap (IoU 0.9) and B is apart: per class NMS keeps A and B, in both classes above 0.05.
  const at::Tensor props = boxes({10, 10, 50, 50, 10, 10, 50, 54, 70, 70, 100, 100});
  const auto out = m->forward(pyramid(1, 8), {props}, {{128, 128}}, nullptr);
  ASSERT_EQ(out.detections.size(), 1u);
  const det::Detections& d = out.detections[0];
  ASSERT_EQ(d.boxes.size(0), 4);
  EXPECT_TRUE(at::allclose(d.scores, at::tensor({0.6f, 0.6f, 0.3f, 0.3f}), 1e-5, 1e-5));
  EXPECT_TRUE(at::equal(d.classes, at::tensor({0, 0, 1, 1}, at::kLong)));
  EXPECT_TRUE(at::allclose(d.boxes.slice(0, 0, 2), at::stack({props[0], props[2]})));
  ASSERT_TRUE(d.masks.defined());
  EXPECT_EQ(d.masks.sizes(), at::IntArrayRef({4, 1, 28, 28}));
  EXPECT_TRUE(((d.masks >= 0) & (d.masks <= 1)).all().item<bool>());
  // 150 disjoint RoIs: 300 candidates above the threshold, the best 100 kept (all of class 0).
  std::vector<float> many;
  for (int i = 0; i < 150; ++i) {
    const float x = static_cast<float>(i % 15) * 8, y = static_cast<float>(i / 15) * 8;
    many.insert(many.end(), {x, y, x + 6, y + 6});
  }
  const auto out2 = m->forward(pyramid(1, 8), {at::tensor(many).view({150, 4})}, {{128, 128}}, nullptr);
  EXPECT_EQ(out2.detections[0].boxes.size(0), 100);
  EXPECT_TRUE((out2.detections[0].classes == 0).all().item<bool>());
}

TEST(RoiHeads, RpnAndRoiHeadsOverfitOneImageAndFindTheBoxes) {
  at::manual_seed(0);
  semaim::models::RpnConfig rc;
  rc.in_channels = 16;
  rc.batch_size_per_image = 64;
  rc.pre_nms_topk_train = rc.pre_nms_topk_test = 200;  // a 128 x 128 image needs few proposals
  rc.post_nms_topk_train = rc.post_nms_topk_test = 100;
  semaim::models::Rpn rpn(rc);
  RoiHeadsConfig hc = tiny(2);
  hc.in_channels = 16;
  hc.conv_dim = 16;
  hc.fc_dim = 64;
  RoiHeads heads(hc);
  const auto feats = pyramid(1, 16, 5);
  const std::vector<at::Tensor> p2p5(feats.begin(), feats.begin() + 4);
  const std::vector<det::ImageSize> sizes{{128, 128}};
  const std::vector<det::ImageTargets> t{two_objects(128, 128)};
  std::vector<at::Tensor> params = rpn->parameters();
  for (const auto& p : heads->parameters()) params.push_back(p);
  torch::optim::SGD opt(params, torch::optim::SGDOptions(0.02).momentum(0.9));
  rpn->train();
  heads->train();
  double first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    const auto r = rpn->forward(feats, sizes, &t);
    const auto h = heads->forward(p2p5, r.proposals, sizes, &t);
    at::Tensor total = at::zeros({});
    for (const auto& [k, v] : r.losses) total = total + v;
    for (const auto& [k, v] : h.losses) total = total + v;
    if (step == 0) first = total.item<double>();
    last = total.item<double>();
    opt.zero_grad();
    total.backward();
    opt.step();
  }
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
  rpn->eval();
  heads->eval();
  torch::NoGradGuard ng;
  const auto r = rpn->forward(feats, sizes, nullptr);
  const auto d = heads->forward(p2p5, r.proposals, sizes, nullptr).detections.at(0);
  ASSERT_GT(d.boxes.size(0), 0);
  for (int64_t g = 0; g < 2; ++g) {
    const at::Tensor same_class = at::nonzero(d.classes == g).select(1, 0);
    ASSERT_GT(same_class.numel(), 0) << "class " << g;
    const at::Tensor iou = det::box_iou(t[0].boxes[g].unsqueeze(0), d.boxes.index_select(0, same_class));
    EXPECT_GT(iou.max().item<float>(), 0.5f) << "class " << g;
  }
}

}  // namespace

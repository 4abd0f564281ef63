// UperNet on ViT features: mmseg's key names, level sizes, the loss's ignore and averaging rules, the heads
// against a PyTorch composition of the same layers, and that it learns a tiny batch.
#include <gtest/gtest.h>

#include <set>

#include <torch/optim/adam.h>

#include "semaim/models/heads/upernet.h"

namespace {
using semaim::models::UperNet;
using semaim::models::UperNetConfig;

UperNetConfig tiny(int64_t classes = 5) {
  UperNetConfig c;
  c.vit.img_size = 32;
  c.vit.patch_size = 4;
  c.vit.embed_dim = 16;
  c.vit.depth = 4;
  c.vit.num_heads = 2;
  c.out_indices = {0, 1, 2, 3};
  c.channels = 8;
  c.aux_channels = 4;
  c.num_classes = classes;
  return c;
}

TEST(UperNet, ParameterNamesFollowMmseg) {
  UperNet m(tiny());
  std::set<std::string> keys;
  for (const auto& p : m->named_parameters()) keys.insert(p.key());
  for (const char* k : {"backbone.cls_token", "backbone.blocks.3.mlp.fc2.weight", "neck.fpn1.0.weight",
                        "neck.fpn1.1.weight", "neck.fpn1.3.bias", "neck.fpn2.0.weight",
                        "decode_head.psp_modules.0.1.conv.weight", "decode_head.psp_modules.3.1.bn.bias",
                        "decode_head.bottleneck.conv.weight", "decode_head.lateral_convs.2.conv.weight",
                        "decode_head.fpn_convs.0.bn.weight", "decode_head.fpn_bottleneck.conv.weight",
                        "decode_head.conv_seg.weight", "decode_head.conv_seg.bias",
                        "auxiliary_head.convs.0.conv.weight", "auxiliary_head.conv_seg.weight"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_FALSE(keys.count("backbone.norm.weight"));
  EXPECT_FALSE(keys.count("decode_head.bottleneck.conv.bias"));  // ConvModule convs have no bias before BN
}

TEST(UperNet, LogitsAreAtTheFinestLevelAndAnyMultipleOfThePatchRuns) {
  UperNet m(tiny());
  m->train();
  const auto out = m->forward(at::randn({2, 3, 32, 48}));
  EXPECT_EQ(out.logits.sizes(), (at::IntArrayRef{2, 5, 32, 48}));  // grid 8x12, x4
  EXPECT_EQ(out.aux_logits.sizes(), (at::IntArrayRef{2, 5, 8, 12}));
  m->eval();
  const auto ev = m->forward(at::randn({1, 3, 16, 16}));
  EXPECT_FALSE(ev.aux_logits.defined());
  EXPECT_EQ(m->predict_logits(at::randn({1, 3, 16, 16})).sizes(), (at::IntArrayRef{1, 5, 16, 16}));
}

TEST(UperNet, CrossEntropyIgnoresAndAveragesAsMmseg) {
  const at::Tensor logits = at::randn({2, 3, 4, 4});
  at::Tensor labels = at::randint(0, 3, {2, 4, 4}, at::kLong);
  labels.index_put_({0, 0}, 255);
  const at::Tensor per_pixel = at::cross_entropy_loss(logits, labels, {}, at::Reduction::None, 255);
  const int64_t kept = (labels != 255).sum().item<int64_t>();
  EXPECT_EQ(kept, 28);
  EXPECT_NEAR(semaim::models::seg_cross_entropy(logits, labels, 255, false).item<double>(),
              per_pixel.sum().item<double>() / 32, 1e-6);
  EXPECT_NEAR(semaim::models::seg_cross_entropy(logits, labels, 255, true).item<double>(),
              per_pixel.sum().item<double>() / 28, 1e-6);
  // Coarse logits are upsampled bilinearly (align_corners false) to the labels first.
  const at::Tensor coarse = at::randn({2, 3, 2, 2});
  const at::Tensor up = at::upsample_bilinear2d(coarse, {4, 4}, false);
  EXPECT_NEAR(semaim::models::seg_cross_entropy(coarse, labels, 255, true).item<double>(),
              semaim::models::seg_cross_entropy(up, labels, 255, true).item<double>(), 1e-6);
}

TEST(UperNet, DecodeHeadEqualsAnAtenCompositionOfMmsegsUperHead) {
  at::manual_seed(0);
  UperNetConfig c = tiny(3);
  c.dropout = 0;
  UperNet m(c);
  m->eval();
  auto& h = *m->decode_head;
  std::vector<at::Tensor> lv = {at::randn({2, 16, 16, 16}), at::randn({2, 16, 8, 8}), at::randn({2, 16, 4, 4}),
                                at::randn({2, 16, 2, 2})};
  // ConvModule in eval: conv, BN with running statistics, ReLU.
  using semaim::models::ConvModuleImpl;
  auto cm = [](const ConvModuleImpl& mod, const at::Tensor& x) {
    const auto& bn = mod.bn;
    const int64_t pad = mod.conv->weight.size(2) / 2;
    return at::relu(at::batch_norm(at::conv2d(x, mod.conv->weight, {}, 1, pad), bn->weight, bn->bias,
                                   bn->running_mean, bn->running_var, false, 0.1, 1e-5, false));
  };
  auto up = [](const at::Tensor& x, at::IntArrayRef s) { return at::upsample_bilinear2d(x, s, false); };
  std::vector<at::Tensor> psp{lv[3]};
  for (size_t i = 0; i < c.pool_scales.size(); ++i) {
    const auto conv = h.psp_modules->ptr<torch::nn::SequentialImpl>(i)->ptr<ConvModuleImpl>(1);
    const int64_t s = c.pool_scales[i];
    psp.push_back(up(cm(*conv, at::adaptive_avg_pool2d(lv[3], {s, s})), {2, 2}));
  }
  std::vector<at::Tensor> lat;
  for (size_t i = 0; i < 3; ++i) lat.push_back(cm(*h.lateral_convs->ptr<ConvModuleImpl>(i), lv[i]));
  lat.push_back(cm(*h.bottleneck, at::cat(psp, 1)));
  for (int i = 3; i > 0; --i) lat[i - 1] = lat[i - 1] + up(lat[i], lat[i - 1].sizes().slice(2));
  std::vector<at::Tensor> outs;
  for (size_t i = 0; i < 3; ++i) outs.push_back(cm(*h.fpn_convs->ptr<ConvModuleImpl>(i), lat[i]));
  outs.push_back(lat[3]);
  for (int i = 1; i < 4; ++i) outs[i] = up(outs[i], {16, 16});
  const at::Tensor ref = at::conv2d(cm(*h.fpn_bottleneck, at::cat(outs, 1)), h.conv_seg->weight, h.conv_seg->bias);
  EXPECT_TRUE(at::allclose(h.forward(lv), ref, 1e-5, 1e-6));
}

TEST(UperNet, LearnsATinyBatch) {
  at::manual_seed(1);
  UperNet m(tiny(3));
  m->train();
  // Labels constant over each 4x4 patch, read off the patch's own pixels.
  const at::Tensor imgs = at::upsample_nearest2d(at::randn({4, 3, 8, 8}), {32, 32});
  const at::Tensor labels = (imgs.select(1, 0) > 0).to(at::kLong) + (imgs.select(1, 1) > 1).to(at::kLong);
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    const at::Tensor loss = m->loss(m->forward(imgs), labels);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first) << first << " -> " << last;
}

}  // namespace

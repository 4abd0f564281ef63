// Shapes, precisions (float64, CPU bf16 autocast), input checks and method.md §3 initialization of AimVit.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "semaim/core/errors.h"
#include "semaim/models/aim.h"
#include "semaim/models/registry.h"

namespace {

namespace m = semaim::models;

m::AimConfig tiny(const std::string& attention = "causal") {
  m::AimConfig c;
  c.vit.img_size = 16;
  c.vit.patch_size = 4;
  c.vit.in_chans = 3;
  c.vit.embed_dim = 32;
  c.vit.depth = 2;
  c.vit.num_heads = 4;
  c.decoder_depth = 1;
  c.attention = attention;
  return c;
}

// Enables CPU bf16 autocast for its lifetime.
struct Bf16Autocast {
  Bf16Autocast() {
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
  }
  ~Bf16Autocast() {
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
};

TEST(AimShapes, ForwardEncodePatchifyShapes) {
  for (const std::string attention : {"causal", "dense"}) {
    SCOPED_TRACE(attention);
    m::AimVit model(tiny(attention));
    auto imgs = at::randn({3, 3, 16, 16});
    auto keys = at::rand({3, 16});
    EXPECT_EQ(model->forward(imgs, keys).sizes(), (at::IntArrayRef{3, 16, 48}));
    EXPECT_EQ(model->encode(imgs).sizes(), (at::IntArrayRef{3, 17, 32}));
    EXPECT_EQ(model->forward_features(imgs).sizes(), (at::IntArrayRef{3, 17, 32}));
    auto patches = model->patchify(imgs);
    EXPECT_EQ(patches.sizes(), (at::IntArrayRef{3, 16, 48}));
    EXPECT_TRUE(at::equal(model->unpatchify(patches), imgs));
  }
}

TEST(AimShapes, FashionMnistSizeRunsOnGreyImages) {
  m::AimVit model(m::aim_config_by_name("aim_fmnist_patch4"));
  auto imgs = at::randn({2, 1, 28, 28});
  auto loss = model->forward_loss(imgs, at::rand({2, 49}), m::TargetConfig{});
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
}

TEST(AimShapes, Float64ModelRunsInFloat64) {
  m::AimVit model(tiny());
  model->to(at::kDouble);
  auto imgs = at::randn({2, 3, 16, 16}, at::kDouble);
  auto pred = model->forward(imgs, at::rand({2, 16}));
  EXPECT_EQ(pred.scalar_type(), at::kDouble);
  EXPECT_EQ(model->encode(imgs).scalar_type(), at::kDouble);
}

TEST(AimShapes, Bf16AutocastForwardAndBackwardAreFinite) {
  for (const std::string attention : {"causal", "dense"}) {
    SCOPED_TRACE(attention);
    torch::manual_seed(5);
    m::AimVit model(tiny(attention));
    auto imgs = at::randn({2, 3, 16, 16});
    auto keys = at::rand({2, 16});
    at::Tensor reference;
    {
      torch::NoGradGuard no_grad;
      reference = model->forward(imgs, keys);
    }
    at::Tensor pred, loss, tokens;
    {
      Bf16Autocast autocast;
      pred = model->forward(imgs, keys);
      tokens = model->encode(imgs);
      loss = model->forward_loss(imgs, keys, m::TargetConfig{});
    }
    EXPECT_EQ(pred.scalar_type(), at::kBFloat16);  // the head ran in bf16
    EXPECT_TRUE(at::isfinite(pred).all().item<bool>());
    EXPECT_TRUE(at::isfinite(tokens).all().item<bool>());
    EXPECT_EQ(loss.scalar_type(), at::kFloat);
    // bf16 keeps ~3 significant digits: the result must still be the same function.
    EXPECT_LE((pred.to(at::kFloat) - reference).norm().item<double>() / reference.norm().item<double>(),
              0.05);
    loss.backward();
    for (const auto& p : model->named_parameters()) {
      if (!p.value().requires_grad()) continue;
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_TRUE(at::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    }
  }
}

TEST(AimShapes, BadInputsThrowInputError) {
  m::AimVit model(tiny());
  auto keys = at::rand({2, 16});
  EXPECT_THROW(model->forward(at::randn({2, 3, 20, 16}), keys), semaim::InputError);
  EXPECT_THROW(model->forward(at::randn({2, 1, 16, 16}), keys), semaim::InputError);
  EXPECT_THROW(model->forward(at::randn({3, 16, 16}), keys), semaim::InputError);
  EXPECT_THROW(model->forward(at::randn({2, 3, 16, 16}), at::rand({2, 15})), semaim::InputError);
  EXPECT_THROW(model->forward(at::randn({2, 3, 16, 16}), at::rand({3, 16})), semaim::InputError);
  EXPECT_THROW(model->encode(at::randn({2, 3, 8, 8})), semaim::InputError);
}

TEST(AimShapes, BadConfigsThrowInputErrorNamingTheField) {
  auto expect_field = [](m::AimConfig c, const std::string& field) {
    try {
      m::AimVit model(c);
      FAIL() << "accepted a bad " << field;
    } catch (const semaim::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  auto c = tiny();
  c.decoder_depth = 3;  // does not divide depth 2
  expect_field(c, "decoder_depth");
  c = tiny();
  c.vit.num_heads = 5;
  expect_field(c, "num_heads");
  c = tiny();
  c.vit.img_size = 18;
  expect_field(c, "img_size");
  c = tiny();
  c.head = "conv";
  expect_field(c, "head");
  c = tiny();
  c.attention = "sparse";
  expect_field(c, "attention");
}

// method.md §3 init: Xavier-uniform Linears (qkv as one 3D x D matrix), zero biases, LayerNorm 1/0, patch
// conv Xavier on its (D, C*p*p) view, cls N(0, 0.02), frozen sin-cos pos_embed.
TEST(AimShapes, InitializationFollowsSpec) {
  torch::manual_seed(1);
  m::AimConfig c = m::aim_config_by_name("aim_fmnist_patch4");
  m::AimVit model(c);
  const int64_t d = c.vit.embed_dim;
  for (const auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    const auto& w = p.value();
    SCOPED_TRACE(name);
    const bool is_norm = name.find("norm") != std::string::npos;
    if (name.ends_with(".bias") && name != "patch_embed.proj.bias") {
      EXPECT_TRUE(at::equal(w, at::zeros_like(w)));
    } else if (is_norm && name.ends_with(".weight")) {
      EXPECT_TRUE(at::equal(w, at::ones_like(w)));
    } else if (name.ends_with(".weight")) {
      const auto w2 = w.reshape({w.size(0), -1});
      const double bound = std::sqrt(6.0 / static_cast<double>(w2.size(0) + w2.size(1)));
      EXPECT_LE(w.abs().max().item<double>(), bound * (1.0 + 1e-6));  // float32 rounding of the bound
      // Uniform(-b, b) has standard deviation b / sqrt(3).
      EXPECT_NEAR(w.std().item<double>(), bound / std::sqrt(3.0), 0.1 * bound / std::sqrt(3.0));
    }
  }
  auto qkv = model->block(0)->attn->qkv->weight;
  EXPECT_EQ(qkv.sizes(), (at::IntArrayRef{3 * d, d}));
  EXPECT_NEAR(qkv.abs().max().item<double>(), std::sqrt(6.0 / (4.0 * d)), 0.02 * std::sqrt(6.0 / (4.0 * d)));
  EXPECT_NEAR(model->cls_token().std().item<double>(), 0.02, 0.006);
  EXPECT_FALSE(model->pos_embed().requires_grad());
  EXPECT_TRUE(at::equal(model->pos_embed(), m::sincos_pos_embed_2d(d, 7, 7)));
}

TEST(AimShapes, SinCosTableLayoutColumnThenRow) {
  // dim 4: omega = {1}; channels = [sin(col), cos(col), sin(row), cos(row)], row 0 = cls zeros.
  auto t = m::sincos_pos_embed_2d(4, 2, 3, at::kDouble);
  ASSERT_EQ(t.sizes(), (at::IntArrayRef{1, 7, 4}));
  EXPECT_TRUE(at::equal(t[0][0], at::zeros({4}, at::kDouble)));
  // patch j = 5: row 1, col 2
  auto want = at::tensor({std::sin(2.0), std::cos(2.0), std::sin(1.0), std::cos(1.0)}, at::kDouble);
  EXPECT_LE((t[0][6] - want).abs().max().item<double>(), 1e-15);
  // dim 8: omega = {1, 1/100}
  auto t8 = m::sincos_pos_embed_2d(8, 2, 3, at::kDouble);
  auto want8 = at::tensor({std::sin(2.0), std::sin(0.02), std::cos(2.0), std::cos(0.02), std::sin(1.0),
                           std::sin(0.01), std::cos(1.0), std::cos(0.01)},
                          at::kDouble);
  EXPECT_LE((t8[0][6] - want8).abs().max().item<double>(), 1e-15);
}

}  // namespace

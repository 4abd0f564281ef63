// Named sizes (timm @register_model style): each builds at its size, and the encoder part has exactly
// timm's ViT parameter count and key names.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "semaim/core/errors.h"
#include "semaim/models/registry.h"

namespace {

namespace m = semaim::models;

// timm VisionTransformer(num_classes=0) parameter count: patch conv, cls, pos_embed, blocks, final norm.
// (Checked against the venv's timm: vit_tiny 5,524,416; small 21,665,664; base 85,798,656; large
// 303,301,632.)
int64_t timm_vit_params(const m::VitConfig& c) {
  const int64_t d = c.embed_dim, hid = c.mlp_hidden();
  const int64_t block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * hid + hid) + (hid * d + d);
  return d * c.in_chans * c.patch_size * c.patch_size + d + d + (c.num_patches() + 1) * d + c.depth * block +
         2 * d;
}

int64_t decoder_and_head_params(const m::AimConfig& c) {
  const int64_t d = c.vit.embed_dim, hid = c.vit.mlp_hidden(), out = c.out_dim();
  const int64_t block = 2 * d + 4 * (d * d + d) + 2 * d + (d * hid + hid) + (hid * d + d);
  const int64_t head = c.head == "mlp" ? (d * hid + hid) + (hid * out + out) : d * out + out;
  return c.decoder_depth * block + head;
}

void expect_builds_at_size(const std::string& name, int64_t dim, int64_t depth, int64_t heads, int64_t dec,
                           int64_t img, int64_t patch, int64_t chans) {
  SCOPED_TRACE(name);
  const m::AimConfig cfg = m::aim_config_by_name(name);
  EXPECT_EQ(cfg.vit.embed_dim, dim);
  EXPECT_EQ(cfg.vit.depth, depth);
  EXPECT_EQ(cfg.vit.num_heads, heads);
  EXPECT_EQ(cfg.decoder_depth, dec);
  EXPECT_EQ(cfg.vit.img_size, img);
  EXPECT_EQ(cfg.vit.patch_size, patch);
  EXPECT_EQ(cfg.vit.in_chans, chans);
  m::AimVit model(cfg);
  int64_t encoder = 0, rest = 0;
  for (const auto& p : model->named_parameters())
    (m::AimVitImpl::is_encoder_key(p.key()) ? encoder : rest) += p.value().numel();
  EXPECT_EQ(encoder, timm_vit_params(cfg.vit));
  EXPECT_EQ(rest, decoder_and_head_params(cfg));
  EXPECT_EQ(model->decoder_depth(), dec);
}

TEST(Registry, EveryNameBuildsAtItsSize) {
  EXPECT_EQ(m::registered_models(),
            (std::vector<std::string>{"aim_base_patch16", "aim_fmnist_patch4", "aim_large_patch16",
                                      "aim_small_patch16", "aim_tiny_patch16"}));
  expect_builds_at_size("aim_fmnist_patch4", 128, 4, 4, 4, 28, 4, 1);
  expect_builds_at_size("aim_tiny_patch16", 192, 12, 3, 12, 224, 16, 3);
  expect_builds_at_size("aim_small_patch16", 384, 12, 6, 12, 224, 16, 3);
  expect_builds_at_size("aim_base_patch16", 768, 12, 12, 12, 224, 16, 3);
  expect_builds_at_size("aim_large_patch16", 1024, 24, 16, 12, 224, 16, 3);
  EXPECT_EQ(m::aim_config_by_name("aim_large_patch16").step(), 2);
}

TEST(Registry, TimmFormulaMatchesKnownTimmCounts) {
  // The formula above, against the counts the venv's timm reports for its stock models.
  m::VitConfig c;
  c.embed_dim = 768;
  EXPECT_EQ(timm_vit_params(c), 85798656);
  c.embed_dim = 1024, c.depth = 24, c.num_heads = 16;
  EXPECT_EQ(timm_vit_params(c), 303301632);
}

TEST(Registry, KeysAreTimmAndGoldenNames) {
  m::AimVit model(m::aim_config_by_name("aim_fmnist_patch4"));
  std::vector<std::string> want = {"cls_token", "pos_embed", "patch_embed.proj.weight",
                                   "patch_embed.proj.bias"};
  for (int i = 0; i < 4; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* s : {"norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"})
      for (const char* wb : {".weight", ".bias"}) want.push_back(b + s + wb);
  }
  for (int i = 0; i < 4; ++i) {
    const std::string b = "query_blocks." + std::to_string(i) + ".";
    for (const char* s : {"norm1", "attn.q", "attn.k", "attn.v", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"})
      for (const char* wb : {".weight", ".bias"}) want.push_back(b + s + wb);
  }
  for (const char* s : {"norm.weight", "norm.bias", "prediction_head.fc1.weight", "prediction_head.fc1.bias",
                        "prediction_head.fc2.weight", "prediction_head.fc2.bias"})
    want.push_back(s);
  std::set<std::string> got, expected(want.begin(), want.end());
  for (const auto& p : model->named_parameters()) got.insert(p.key());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(model->named_parameters().keys().front(), "cls_token");  // timm's state_dict order
  EXPECT_TRUE(model->named_buffers().is_empty());
  // Encoder/decoder split used by export.
  EXPECT_TRUE(m::AimVitImpl::is_encoder_key("norm.weight"));
  EXPECT_TRUE(m::AimVitImpl::is_encoder_key("blocks.3.norm1.bias"));
  EXPECT_TRUE(m::AimVitImpl::is_encoder_key("pos_embed"));
  EXPECT_FALSE(m::AimVitImpl::is_encoder_key("query_blocks.0.norm1.weight"));
  EXPECT_FALSE(m::AimVitImpl::is_encoder_key("prediction_head.fc1.weight"));
  m::AimConfig linear = m::aim_config_by_name("aim_fmnist_patch4");
  linear.head = "linear";
  m::AimVit linear_model(linear);
  EXPECT_TRUE(linear_model->named_parameters().contains("prediction_head.weight"));
}

TEST(Registry, UnknownNameNamesTheClosest) {
  try {
    m::aim_config_by_name("aim_bsae_patch16");
    FAIL() << "no error for an unknown name";
  } catch (const semaim::InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("aim_bsae_patch16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'aim_base_patch16'"), std::string::npos) << msg;
  }
  try {
    m::aim_config_by_name("aim_large");
    FAIL() << "no error for an unknown name";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'aim_large_patch16'"), std::string::npos) << e.what();
  }
}

}  // namespace

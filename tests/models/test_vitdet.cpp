// ViTDet's backbone and simple feature pyramid: window partition, shapes with padded windows,
// zero-initialized rel-pos tables, equality with timm's Block when a window covers the grid, loading a semaim
// encoder's state dict, detectron2's key names; the tiny Mask R-CNN trains and infers; and numbers against
// tests/models/vitdet_reference.py, a PyTorch re-implementation of detectron2's get_rel_pos,
// add_decomposed_rel_pos, get_abs_pos, Block, ViT and SimpleFeaturePyramid.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "python_suite.h"
#include "semaim/core/errors.h"
#include "semaim/engine/autocast.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/heads/mask_rcnn.h"
#include "semaim/models/heads/simple_fpn.h"
#include "semaim/models/layers.h"
#include "semaim/models/vit.h"
#include "semaim/models/vitdet.h"
#include "semaim/models/weights.h"
#include "temp_dir.h"

namespace {

namespace m = semaim::models;

// Table grid 4x4 (img 32, patch 8), D 48, 3 heads (head_dim 16); a global block 1; window 4; rel-pos tables
// of global blocks sized for a 6x6 grid (input 48).
m::VitDetConfig small_config(bool rel_pos = true) {
  m::VitDetConfig c;
  c.vit = {.img_size = 32, .patch_size = 8, .in_chans = 3, .embed_dim = 48, .depth = 3, .num_heads = 3};
  c.input_size = 48;
  c.window_size = 4;
  c.global_blocks = {1};
  c.use_rel_pos = rel_pos;
  return c;
}

// Every parameter moved off its init (rel-pos tables and norms included), so nothing passes by being zero or
// one.
void perturb(torch::nn::Module& mod, uint64_t seed) {
  at::manual_seed(seed);
  at::NoGradGuard ng;
  for (auto& p : mod.parameters()) p.add_(at::randn_like(p) * 0.1);
}

std::set<std::string> keys_of(const torch::nn::Module& mod) {
  std::set<std::string> out;
  for (const auto& [k, t] : m::module_weights(mod)) out.insert(k);
  return out;
}

void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what, double tol = 1e-5) {
  ASSERT_TRUE(want.defined()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double scale = std::max(1.0, want.abs().max().item<double>());
  const double diff = (got - want).abs().max().item<double>();
  EXPECT_LE(diff, tol * scale) << what << ": max abs diff " << diff;
}

TEST(VitDet, WindowPartitionPadsAndUnpartitionRoundTrips) {
  const at::Tensor x = at::randn({2, 6, 5, 3});
  auto [windows, padded] = m::window_partition(x, 4);
  EXPECT_EQ(padded, (m::Grid{8, 8}));
  ASSERT_EQ(windows.sizes(), (at::IntArrayRef{8, 4, 4, 3}));  // 2 images x 2x2 windows
  EXPECT_TRUE(at::equal(windows[0], x[0].narrow(0, 0, 4).narrow(1, 0, 4)));
  // Window 1 of image 0 is its top-right one: columns 4 (real) and 5..7 (zero padding).
  EXPECT_TRUE(at::equal(windows[1].narrow(1, 0, 1), x[0].narrow(0, 0, 4).narrow(1, 4, 1)));
  EXPECT_EQ(windows[1].narrow(1, 1, 3).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(windows[7].narrow(0, 2, 2).abs().sum().item<float>(), 0.0f);  // bottom rows 6, 7 of image 1
  EXPECT_TRUE(at::equal(m::window_unpartition(windows, 4, padded, {6, 5}), x));
  auto [exact, grid] = m::window_partition(x.narrow(1, 0, 4).narrow(2, 0, 4), 2);
  EXPECT_EQ(grid, (m::Grid{4, 4}));
  EXPECT_TRUE(at::equal(m::window_unpartition(exact, 2, grid, {4, 4}), x.narrow(1, 0, 4).narrow(2, 0, 4)));
}

TEST(VitDet, WindowAndGlobalBlocksRunOnGridsNotDivisibleByTheWindow) {
  m::VitDetBackbone net(small_config());
  EXPECT_EQ(net->block(0)->window_size, 4);
  EXPECT_EQ(net->block(1)->window_size, 0);
  EXPECT_EQ(net->block(2)->window_size, 4);
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{48, 40}, {56, 72}, {32, 32}, {8, 16}}) {
    const at::Tensor y = net->forward(at::randn({2, 3, h, w}));
    EXPECT_EQ(y.sizes(), (at::IntArrayRef{2, 48, h / 8, w / 8})) << h << "x" << w;
    EXPECT_TRUE(y.isfinite().all().item<bool>());
  }
  EXPECT_THROW(net->forward(at::randn({1, 3, 30, 32})), semaim::InputError);
  EXPECT_THROW(net->forward(at::randn({1, 1, 32, 32})), semaim::InputError);
}

TEST(VitDet, RelPosTablesStartAtZeroSizedByWindowOrInputGrid) {
  m::VitDetBackbone net(small_config());
  for (int64_t i = 0; i < 3; ++i) {
    const auto& attn = net->block(i)->attn;
    const int64_t side = i == 1 ? 6 : 4;  // global: input 48 / patch 8; window blocks: the window
    ASSERT_TRUE(attn->rel_pos_h.defined());
    EXPECT_EQ(attn->rel_pos_h.sizes(), (at::IntArrayRef{2 * side - 1, 16}));
    EXPECT_EQ(attn->rel_pos_w.sizes(), (at::IntArrayRef{2 * side - 1, 16}));
    EXPECT_EQ(attn->rel_pos_h.abs().sum().item<float>(), 0.0f);
    EXPECT_EQ(attn->rel_pos_w.abs().sum().item<float>(), 0.0f);
  }
  const auto keys = keys_of(*net);
  EXPECT_TRUE(keys.count("blocks.1.attn.rel_pos_h"));
  EXPECT_FALSE(keys_of(*m::VitDetBackbone(small_config(false))).count("blocks.1.attn.rel_pos_h"));
}

TEST(VitDet, KeysAreTimmsWithoutAFinalNorm) {
  m::VitDetBackbone net(small_config());
  const auto keys = keys_of(*net);
  for (const char* k :
       {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight",
        "blocks.2.norm2.bias", "blocks.2.mlp.fc1.weight", "blocks.2.mlp.fc2.bias", "blocks.2.attn.rel_pos_w"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_FALSE(keys.count("norm.weight"));
  EXPECT_EQ(net->pos_embed.sizes(), (at::IntArrayRef{1, 17, 48}));  // the 4x4 table with its cls row
}

TEST(VitDet, DropPathRisesLinearlyAsTimm) {
  m::VitDetConfig c = small_config();
  c.vit.drop_path_rate = 0.2;
  m::VitDetBackbone net(c);
  const auto want = m::drop_path_rates(0.2, 3);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(net->block(i)->drop_path_rate, want[static_cast<size_t>(i)]);
}

// The VitDet block on (N, g, g, D) against vit.h's Block on (N, g*g, D), the same weights.
void expect_block_equals_timm(int64_t window, bool rel_pos) {
  const int64_t d = 48, g = 4;
  at::manual_seed(3);
  m::Block timm(d, 3, 4 * d);
  perturb(*timm, 4);
  m::VitDetBlock det(d, 3, 4 * d, 0.0, window, rel_pos, g);
  const auto report = m::load_weights(*det, m::module_weights(*timm), {.allow_missing = rel_pos});
  EXPECT_EQ(report.loaded.size(), m::module_weights(*timm).size());
  const at::Tensor x = at::randn({2, g, g, d});
  at::NoGradGuard ng;
  expect_close(det->forward(x).reshape({2, g * g, d}), timm->forward(x.reshape({2, g * g, d})),
               "window " + std::to_string(window));
}

TEST(VitDet, BlockEqualsTimmBlockWhenOneWindowCoversTheGrid) {
  expect_block_equals_timm(4, false);
  expect_block_equals_timm(0, false);
  expect_block_equals_timm(4, true);  // zero-initialized rel-pos tables add nothing
}

TEST(VitDet, PretrainedEncoderStateDictLoadsWithEveryTensorTaken) {
  const m::VitDetConfig c = small_config();
  m::VitEncoder enc(c.vit);
  perturb(*enc, 7);
  const auto weights = m::module_weights(*enc);
  m::VitDetBackbone net(c);
  const auto report = m::load_weights(*net, weights, {.strict = false});
  EXPECT_TRUE(report.shape_mismatch.empty());
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"norm.weight", "norm.bias"}));  // no final norm
  EXPECT_EQ(report.loaded.size(), weights.size() - 2);
  EXPECT_EQ(report.missing.size(), 6u);  // rel_pos_h / rel_pos_w of 3 blocks, new and zero
  for (const auto& k : report.missing) EXPECT_NE(k.find(".attn.rel_pos_"), std::string::npos) << k;
  const auto loaded = m::module_weights(*net);
  std::map<std::string, at::Tensor> by_key(loaded.begin(), loaded.end());
  for (const auto& [k, t] : weights)
    if (k.rfind("norm.", 0) != 0) EXPECT_TRUE(at::equal(by_key.at(k), t)) << k;
  // Without rel pos the backbone is exactly the encoder minus its final norm.
  m::VitDetBackbone plain(small_config(false));
  EXPECT_TRUE(m::load_weights(*plain, weights, {.allow_extra = true}).missing.empty());
}

TEST(VitDet, GradientsReachRelPosButNotTheUnusedClsToken) {
  m::VitDetBackbone net(small_config());
  perturb(*net, 9);
  net->train();
  net->forward(at::randn({2, 3, 48, 40})).pow(2).mean().backward();
  EXPECT_FALSE(net->cls_token.requires_grad());
  for (int64_t i = 0; i < 3; ++i) {
    const auto& attn = net->block(i)->attn;
    ASSERT_TRUE(attn->rel_pos_h.grad().defined()) << i;
    EXPECT_GT(attn->rel_pos_h.grad().abs().sum().item<float>(), 0.0f) << i;
    EXPECT_GT(attn->rel_pos_w.grad().abs().sum().item<float>(), 0.0f) << i;
  }
  EXPECT_GT(net->pos_embed.grad().abs().sum().item<float>(), 0.0f);
}

// detect.abs_pos: sincos adds MAE's table computed at the input grid (one position step per patch), not the
// stored table resampled; it equals a resample backbone whose table is that sin-cos grid itself, and the frozen
// pos_embed neither matters nor learns.
TEST(VitDet, SincosAbsPosIsMaesTableAtTheInputGridAndFrozen) {
  m::VitDetConfig c = small_config();
  c.sincos_abs_pos = true;
  m::VitDetBackbone net(c);
  perturb(*net, 21);
  EXPECT_FALSE(net->pos_embed.requires_grad());
  // The same weights, with a table stored at the 6x6 input grid (img 48) holding the sin-cos values: no resampling.
  m::VitDetConfig r = small_config();
  r.vit.img_size = 48;
  m::VitDetBackbone ref(r);
  auto weights = m::module_weights(*net);
  for (auto& [k, t] : weights)
    if (k == "pos_embed") t = m::sincos_pos_embed_2d(48, 6, 6);
  const auto report = m::load_weights(*ref, weights, {.strict = true});
  EXPECT_TRUE(report.shape_mismatch.empty());
  net->eval();
  ref->eval();
  const at::Tensor x = at::randn({2, 3, 48, 48});
  at::Tensor got;
  {
    at::NoGradGuard ng;
    got = net->forward(x);
    expect_close(got, ref->forward(x), "sincos backbone vs a table at the input grid", 1e-6);
    // Not the resampled 4x4 sin-cos table: that squeezes 1.5 patches into one position step.
    m::VitDetBackbone resampled(small_config());
    auto w4 = m::module_weights(*net);
    for (auto& [k, t] : w4)
      if (k == "pos_embed") t = m::sincos_pos_embed_2d(48, 4, 4);
    m::load_weights(*resampled, w4, {.strict = true});
    resampled->eval();
    EXPECT_GT((resampled->forward(x) - got).abs().max().item<float>(), 1e-3f);
    net->pos_embed.add_(1.0);
    EXPECT_TRUE(at::equal(net->forward(x), got));  // the stored table is unused
  }
  net->train();
  net->forward(x).pow(2).mean().backward();
  EXPECT_FALSE(net->pos_embed.grad().defined());
}

TEST(VitDet, RunsUnderBf16AutocastWithTheRelPosBiasInTheQueriesDtype) {
  m::VitDetBackbone net(small_config());
  m::SimpleFeaturePyramid fpn(48, 16, std::vector<double>{4.0, 2.0, 1.0, 0.5}, 8);
  perturb(*net, 15);
  at::Tensor loss;
  {
    semaim::engine::AutocastGuard ac(at::kCPU, true);
    for (const auto& level : fpn->forward(net->forward(at::randn({2, 3, 48, 40})))) {
      EXPECT_TRUE(level.isfinite().all().item<bool>());
      loss = loss.defined() ? loss + level.to(at::kFloat).pow(2).mean() : level.to(at::kFloat).pow(2).mean();
    }
  }
  loss.backward();
  EXPECT_TRUE(net->block(1)->attn->rel_pos_w.grad().isfinite().all().item<bool>());
  EXPECT_GT(net->block(1)->attn->rel_pos_w.grad().abs().sum().item<float>(), 0.0f);
}

TEST(VitDet, ConfigFaultsNameTheKey) {
  auto fault = [](auto edit) {
    m::VitDetConfig c = small_config();
    edit(c);
    try {
      c.validate("cfg.yaml");
    } catch (const semaim::InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(fault([](auto& c) { c.global_blocks = {3}; }).find("cfg.yaml.global_blocks"), std::string::npos);
  EXPECT_NE(fault([](auto& c) { c.global_blocks = {1, 1}; }).find("listed twice"), std::string::npos);
  EXPECT_NE(fault([](auto& c) { c.input_size = 50; }).find("cfg.yaml.input_size"), std::string::npos);
  EXPECT_NE(fault([](auto& c) { c.window_size = -1; }).find("cfg.yaml.window_size"), std::string::npos);
  EXPECT_EQ(fault([](auto& c) { c.window_size = 0; }), "no error");  // every block global
}

TEST(SimpleFeaturePyramid, KeysAreDetectron2sAndLevelsHaveStrides4To64) {
  m::SimpleFeaturePyramid fpn(64, 32);
  EXPECT_EQ(fpn->strides(), (std::vector<int64_t>{4, 8, 16, 32, 64}));
  const auto keys = keys_of(*fpn);
  for (const char* k :
       {"simfp_2.0.weight", "simfp_2.0.bias", "simfp_2.1.weight", "simfp_2.1.bias", "simfp_2.3.weight",
        "simfp_2.4.weight", "simfp_2.4.norm.weight", "simfp_2.4.norm.bias", "simfp_2.5.weight",
        "simfp_2.5.norm.bias", "simfp_3.0.weight", "simfp_3.1.weight", "simfp_3.2.norm.weight",
        "simfp_4.0.weight", "simfp_4.1.norm.bias", "simfp_5.1.weight", "simfp_5.2.norm.weight"})
    EXPECT_TRUE(keys.count(k)) << k;
  EXPECT_FALSE(keys.count("simfp_2.4.bias"));  // normed convs have no bias
  EXPECT_EQ(keys.size(),
            12u + 8u + 6u + 6u);  // simfp_2 (deconv, LN, deconv, 2 ConvLn), simfp_3, simfp_4, simfp_5
  const auto levels = fpn->forward(at::randn({2, 64, 8, 6}));  // a 128x96 input at stride 16
  ASSERT_EQ(levels.size(), 5u);
  const std::vector<std::vector<int64_t>> want{{32, 24}, {16, 12}, {8, 6}, {4, 3}, {2, 2}};
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(levels[i].sizes(), (at::IntArrayRef{2, 32, want[i][0], want[i][1]})) << "level " << i;
  EXPECT_EQ(m::SimpleFeaturePyramid(64, 32, std::vector<double>{2.0, 1.0}, 8)->strides(),
            (std::vector<int64_t>{4, 8, 16}));
  EXPECT_THROW(m::SimpleFeaturePyramid(64, 32, std::vector<double>{4.0, 1.0}), semaim::InputError);
  EXPECT_THROW(m::SimpleFeaturePyramid(64, 32, std::vector<double>{3.0}), semaim::InputError);
  EXPECT_THROW(m::SimpleFeaturePyramid(62, 32, std::vector<double>{4.0}), semaim::InputError);
}

// Runs vitdet_reference.py once for the suite.
class VitDetReference : public semaim::test::PythonSuite<VitDetReference> {
 protected:
  struct RelCase {
    std::string name;
    int64_t q, k, len;
  };
  static std::vector<RelCase> rel_cases() {
    return {{"equal", 4, 4, 7}, {"resampled", 7, 7, 9}, {"q_shorter", 4, 7, 13}, {"k_shorter", 7, 3, 5}};
  }

  static void SetUpTestSuite() {
    if (!have_python()) return;
    semaim::io::NamedTensors t;
    nlohmann::json meta;
    at::manual_seed(11);
    nlohmann::json rel = nlohmann::json::array();
    for (const auto& c : rel_cases()) {
      t.emplace_back("rel." + c.name + ".table", at::randn({c.len, 6}));
      rel.push_back({{"name", c.name}, {"q", c.q}, {"k", c.k}});
    }
    meta["rel_cases"] = rel.dump();
    t.emplace_back("bias.q", at::randn({2, 15, 6}));
    t.emplace_back("bias.rel_pos_h", at::randn({7, 6}));  // resampled to 2*3-1 rows
    t.emplace_back("bias.rel_pos_w", at::randn({9, 6}));  // already 2*5-1 rows
    meta["bias"] = nlohmann::json{{"q", {3, 5}}, {"k", {3, 5}}}.dump();
    t.emplace_back("abs.pos", at::randn({1, 17, 8}));
    meta["abs"] = nlohmann::json{{"table", {4, 4}}, {"hw", {3, 7}}}.dump();
    add_block(t, meta);
    add_net(t, meta);
    add_fpn(t, meta);
    std::map<std::string, std::string> metadata;
    for (auto& [k, v] : meta.items()) metadata[k] = v.get<std::string>();
    const semaim::test::TempDir tmp;
    const std::string in = tmp.file("in.safetensors"), out = tmp.file("out.safetensors");
    semaim::io::save_safetensors(in, t, metadata);
    for (auto& [k, v] : t) in_[k] = v;
    using semaim::test::quoted;
    if (run_script("models/vitdet_reference.py", quoted(in) + " " + quoted(out)))
      for (auto& [k, v] : semaim::io::load_safetensors(out).tensors) ref_[k] = v;
  }

  // A window block (window 4 on a 6x5 grid: padded to 8x8) with rel pos; the upstream gradient for backward.
  static void add_block(semaim::io::NamedTensors& t, nlohmann::json& meta) {
    block_ = m::VitDetBlock(48, 3, 96, 0.0, 4, true, 4);
    perturb(*block_, 12);
    for (auto& [k, v] : m::module_weights(*block_)) t.emplace_back("block." + k, v);
    t.emplace_back("block.input.x", at::randn({2, 6, 5, 48}));
    t.emplace_back("block.input.gy", at::randn({2, 6, 5, 48}));
    meta["block"] =
        nlohmann::json{{"dim", 48}, {"num_heads", 3}, {"mlp_hidden", 96}, {"window_size", 4}, {"rel_side", 4}}
            .dump();
  }

  // The whole backbone on a 6x5 grid: the 4x4 table resampled, one window block padded, the global block's
  // 11-row tables resampled to 9 along the width.
  static void add_net(semaim::io::NamedTensors& t, nlohmann::json& meta) {
    const m::VitDetConfig c = small_config();
    net_ = m::VitDetBackbone(c);
    perturb(*net_, 13);
    net_->eval();
    for (auto& [k, v] : m::module_weights(*net_)) t.emplace_back("net." + k, v);
    t.emplace_back("net.input.images", at::randn({2, 3, 48, 40}));
    meta["net"] = nlohmann::json{{"embed_dim", 48},  {"table_grid", {4, 4}}, {"in_chans", 3},
                                 {"patch_size", 8},  {"num_heads", 3},       {"mlp_hidden", 192},
                                 {"depth", 3},       {"global_blocks", {1}}, {"window_size", 4},
                                 {"input_size", 48}, {"use_rel_pos", true}}
                      .dump();
  }

  static void add_fpn(semaim::io::NamedTensors& t, nlohmann::json& meta) {
    fpn_ = m::SimpleFeaturePyramid(48, 16, std::vector<double>{4.0, 2.0, 1.0, 0.5}, 8);
    perturb(*fpn_, 14);
    for (auto& [k, v] : m::module_weights(*fpn_)) t.emplace_back("fpn." + k, v);
    t.emplace_back("fpn.input.x", at::randn({2, 48, 6, 5}));
    meta["fpn"] = nlohmann::json{
        {"in_dim", 48},
        {"out_channels", 16},
        {"scale_factors", {4.0, 2.0, 1.0, 0.5}},
        {"in_stride",
         8}}.dump();
  }

  static void TearDownTestSuite() {
    block_ = m::VitDetBlock(nullptr);
    net_ = m::VitDetBackbone(nullptr);
    fpn_ = m::SimpleFeaturePyramid(nullptr);
  }
  static const at::Tensor& ref(const std::string& key) {
    static const at::Tensor kNone;
    auto it = ref_.find(key);
    EXPECT_NE(it, ref_.end()) << "the reference produced no " << key;
    return it == ref_.end() ? kNone : it->second;
  }

  static inline m::VitDetBlock block_{nullptr};
  static inline m::VitDetBackbone net_{nullptr};
  static inline m::SimpleFeaturePyramid fpn_{nullptr};
  static inline std::map<std::string, at::Tensor> in_, ref_;
};

TEST_F(VitDetReference, GetRelPosGathersAndResamplesAsDetectron2) {
  for (const auto& c : rel_cases())
    expect_close(m::get_rel_pos(c.q, c.k, in_.at("rel." + c.name + ".table")), ref("rel." + c.name), c.name);
}

TEST_F(VitDetReference, DecomposedRelPosBiasEqualsAddDecomposedRelPos) {
  expect_close(m::decomposed_rel_pos_bias(in_.at("bias.q"), in_.at("bias.rel_pos_h"),
                                          in_.at("bias.rel_pos_w"), {3, 5}, {3, 5}),
               ref("bias"), "bias");
}

TEST_F(VitDetReference, AbsPosIsResampledBicubicallyWithoutAntialias) {
  expect_close(m::get_abs_pos(in_.at("abs.pos"), true, {4, 4}, {3, 7}), ref("abs"), "abs");
  // The native grid is the table itself, reshaped.
  EXPECT_TRUE(at::equal(m::get_abs_pos(in_.at("abs.pos"), true, {4, 4}, {4, 4}),
                        in_.at("abs.pos").narrow(1, 1, 16).reshape({1, 4, 4, 8})));
}

TEST_F(VitDetReference, WindowBlockWithRelPosMatchesForwardAndGradients) {
  const at::Tensor x = in_.at("block.input.x").clone().requires_grad_(true);
  block_->zero_grad();
  const at::Tensor y = block_->forward(x);
  (y * in_.at("block.input.gy")).sum().backward();
  expect_close(y.detach(), ref("block.y"), "y");
  expect_close(x.grad(), ref("block.grad.x"), "grad x");
  for (const auto& p : block_->named_parameters())
    expect_close(p.value().grad(), ref("block.grad." + p.key()), "grad " + p.key());
}

TEST_F(VitDetReference, BackboneMatchesOnAGridNeedingEveryResampling) {
  at::NoGradGuard ng;
  expect_close(net_->forward(in_.at("net.input.images")), ref("net.y"), "net");
}

TEST_F(VitDetReference, PyramidMatchesWithChannelLayerNormAndTheMaxPooledLevel) {
  at::NoGradGuard ng;
  const auto levels = fpn_->forward(in_.at("fpn.input.x"));
  ASSERT_EQ(levels.size(), 5u);
  for (size_t i = 0; i < levels.size(); ++i)
    expect_close(levels[i], ref("fpn." + std::to_string(i)), "level " + std::to_string(i));
}

// img 64, patch 8, D 64, depth 2 (block 1 global), window 4; pyramid p1..p5 (strides 2..32), 3 classes.
m::MaskRcnnConfig tiny_mask_rcnn(int64_t patch = 8) {
  m::MaskRcnnConfig c;
  c.backbone.vit = {
      .img_size = 64, .patch_size = patch, .in_chans = 3, .embed_dim = 64, .depth = 2, .num_heads = 4};
  c.backbone.input_size = 64;
  c.backbone.window_size = 4;
  c.backbone.global_blocks = {1};
  c.fpn_channels = 32;
  c.rpn.anchor_sizes = {8, 16, 32, 64, 128};
  c.rpn.pre_nms_topk_train = c.rpn.pre_nms_topk_test = 200;
  c.rpn.post_nms_topk_train = c.rpn.post_nms_topk_test = 100;
  c.roi.num_classes = 3;
  c.roi.conv_dim = 16;
  c.roi.fc_dim = 32;
  c.roi.batch_size_per_image = 64;
  return c;
}

TEST(MaskRcnn, KeysReadAsDetectron2sVitDet) {
  m::MaskRcnn model(tiny_mask_rcnn(16));
  EXPECT_EQ(model->config().rpn.strides, (std::vector<int64_t>{4, 8, 16, 32, 64}));
  EXPECT_EQ(model->config().roi.strides, (std::vector<int64_t>{4, 8, 16, 32}));
  const auto keys = keys_of(*model);
  for (const char* k :
       {"backbone.net.pos_embed", "backbone.net.patch_embed.proj.weight",
        "backbone.net.blocks.0.attn.qkv.weight", "backbone.net.blocks.1.attn.rel_pos_h",
        "backbone.simfp_2.0.weight", "backbone.simfp_2.4.norm.weight", "backbone.simfp_5.2.weight",
        "proposal_generator.rpn_head.conv.conv0.weight",
        "proposal_generator.rpn_head.objectness_logits.weight", "roi_heads.box_head.fc1.weight",
        "roi_heads.box_predictor.cls_score.weight", "roi_heads.mask_head.predictor.weight"})
    EXPECT_TRUE(keys.count(k)) << k;
}

TEST(MaskRcnn, TinyModelTrainsEndToEndAndInfersAtMost100PerImage) {
  at::manual_seed(21);
  m::MaskRcnn model(tiny_mask_rcnn());
  EXPECT_EQ(model->config().rpn.strides, (std::vector<int64_t>{2, 4, 8, 16, 32}));
  const at::Tensor images = at::randn({2, 3, 64, 64});
  const std::vector<m::det::ImageSize> sizes{{64, 64}, {56, 48}};
  std::vector<m::det::ImageTargets> targets(2);
  const std::vector<std::vector<float>> boxes{{4, 6, 30, 40, 20, 10, 60, 50}, {8, 8, 40, 30}};
  for (size_t i = 0; i < 2; ++i) {
    const int64_t g = static_cast<int64_t>(boxes[i].size() / 4);
    targets[i].boxes = at::tensor(boxes[i]).view({g, 4});
    targets[i].classes = at::arange(g, at::kLong) % 3;
    targets[i].masks = at::zeros({g, 64, 64}, at::kByte);
    for (int64_t j = 0; j < g; ++j) {  // each mask fills its box
      const auto b = targets[i].boxes[j];
      const auto y0 = b[1].item<int64_t>(), x0 = b[0].item<int64_t>();
      targets[i]
          .masks[j]
          .narrow(0, y0, b[3].item<int64_t>() - y0)
          .narrow(1, x0, b[2].item<int64_t>() - x0)
          .fill_(1);
    }
  }
  model->train();
  const auto losses = model->forward_train(images, sizes, targets);
  std::set<std::string> names;
  at::Tensor total = at::zeros({});
  for (const auto& [k, v] : losses) {
    names.insert(k);
    EXPECT_TRUE(v.isfinite().item<bool>()) << k;
    total = total + v;
  }
  EXPECT_EQ(names,
            (std::set<std::string>{"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}));
  total.backward();
  const at::Tensor& g = model->net->patch_embed->proj->weight.grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.abs().sum().item<float>(), 0.0f);
  EXPECT_THROW(model->forward_train(images, {{64, 64}}, targets), semaim::InputError);

  model->eval();
  const auto dets = model->inference(images, sizes);
  ASSERT_EQ(dets.size(), 2u);
  for (const auto& d : dets) {
    EXPECT_LE(d.boxes.size(0), 100);
    EXPECT_EQ(d.scores.size(0), d.boxes.size(0));
    EXPECT_EQ(d.classes.size(0), d.boxes.size(0));
    if (d.boxes.size(0) > 0) EXPECT_TRUE(d.scores.isfinite().all().item<bool>());
  }
  EXPECT_THROW(model->inference(images, {{80, 64}, {64, 64}}), semaim::InputError);
}

}  // namespace

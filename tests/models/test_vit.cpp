// The ViT encoder alone against timm's VisionTransformer (tests/models/timm_vit_reference.py, same weights):
// forward_features and forward_intermediates at the native and other input sizes, the resampled position
// table, per-block drop-path rates; plus input checks, the learnable table and the encoder registry.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "python_suite.h"
#include "semaim/core/errors.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/layers.h"
#include "semaim/models/registry.h"
#include "semaim/models/vit.h"
#include "semaim/models/weights.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
namespace m = semaim::models;

namespace {

m::VitConfig small_config() {
  return {.img_size = 32, .patch_size = 8, .in_chans = 3, .embed_dim = 48, .depth = 4, .num_heads = 3,
          .drop_path_rate = 0.3, .learnable_pos_embed = true, .dynamic_img_size = true};
}

// An encoder whose every parameter (norms and the position table included) is moved off its init.
m::VitEncoder perturbed_encoder(const m::VitConfig& cfg, uint64_t seed) {
  at::manual_seed(seed);
  m::VitEncoder enc(cfg);
  at::NoGradGuard ng;
  for (auto& p : enc->parameters()) p.add_(at::randn_like(p) * 0.05);
  enc->eval();
  return enc;
}

struct Case {
  std::string name, input;
  nlohmann::json indices_json;  // the same indices as opts.indices, as timm's Python argument
  m::IntermediatesOptions opts;
};

std::vector<Case> cases() {
  auto make = [](std::string name, std::string input, m::BlockIndices idx, nlohmann::json idx_json, bool norm,
                 m::FeatureFormat fmt, bool prefix, bool only, bool stop_early) {
    Case c{std::move(name), std::move(input), std::move(idx_json), {}};
    c.opts.indices = idx;
    c.opts.norm = norm;
    c.opts.output_fmt = fmt;
    c.opts.return_prefix_tokens = prefix;
    c.opts.intermediates_only = only;
    c.opts.stop_early = stop_early;
    return c;
  };
  using V = std::vector<int64_t>;
  const auto nchw = m::FeatureFormat::kNCHW, nlc = m::FeatureFormat::kNLC;
  return {
      make("last2_nchw", "native", int64_t{2}, 2, false, nchw, false, false, false),
      make("list_nlc_norm_prefix", "other", V{0, -1}, {0, -1}, true, nlc, true, false, false),
      make("stop_early", "native", V{1}, {1}, false, nchw, false, false, true),
      make("all_only_nlc", "small", std::monostate{}, nullptr, false, nlc, false, true, false),
      make("unordered_norm", "other", V{3, 1}, {3, 1}, true, nchw, false, false, false),
  };
}

const std::vector<std::pair<int64_t, int64_t>> kResampleGrids = {{6, 5}, {2, 3}, {4, 4}, {8, 8}};

// Runs timm once for the whole suite; tests skip with the reason when the venv or timm is missing.
class VitTimm : public semaim::test::PythonSuite<VitTimm> {
 protected:
  static void SetUpTestSuite() {
    if (!have_python()) return;
    encoder_ = perturbed_encoder(small_config(), 5);
    at::manual_seed(6);
    inputs_ = {{"native", at::randn({2, 3, 32, 32})},
               {"other", at::randn({2, 3, 48, 40})},
               {"small", at::randn({2, 3, 16, 24})}};
    auto tensors = m::module_weights(*encoder_);
    for (const auto& [name, x] : inputs_) tensors.emplace_back("input." + name, x);
    const auto& c = encoder_->vit_config();
    nlohmann::json arch = {{"img_size", c.img_size},   {"patch_size", c.patch_size},
                           {"in_chans", c.in_chans},   {"embed_dim", c.embed_dim},
                           {"depth", c.depth},         {"num_heads", c.num_heads},
                           {"mlp_ratio", c.mlp_ratio}, {"drop_path_rate", c.drop_path_rate}};
    nlohmann::json js_cases = nlohmann::json::array();
    for (const auto& k : cases())
      js_cases.push_back({{"name", k.name},
                          {"input", k.input},
                          {"indices", k.indices_json},
                          {"norm", k.opts.norm},
                          {"output_fmt", k.opts.output_fmt == m::FeatureFormat::kNCHW ? "NCHW" : "NLC"},
                          {"return_prefix_tokens", k.opts.return_prefix_tokens},
                          {"intermediates_only", k.opts.intermediates_only},
                          {"stop_early", k.opts.stop_early}});
    nlohmann::json grids = kResampleGrids;
    const semaim::test::TempDir tmp;  // the exchange files live only while timm runs
    const std::string in = tmp.file("in.safetensors"), out = tmp.file("out.safetensors");
    semaim::io::save_safetensors(
        in, tensors, {{"arch", arch.dump()}, {"cases", js_cases.dump()}, {"resample", grids.dump()}});
    using semaim::test::quoted;
    if (run_script("models/timm_vit_reference.py", quoted(in) + " " + quoted(out), &skip_reason_))
      for (auto& [k, t] : semaim::io::load_safetensors(out).tensors) ref_[k] = t;
  }
  static void TearDownTestSuite() { encoder_ = m::VitEncoder(nullptr); }
  static const at::Tensor& ref(const std::string& key) {
    static const at::Tensor kNone;
    auto it = ref_.find(key);
    EXPECT_NE(it, ref_.end()) << "timm produced no " << key;
    return it == ref_.end() ? kNone : it->second;
  }

  static inline m::VitEncoder encoder_{nullptr};
  static inline std::map<std::string, at::Tensor> inputs_;
  static inline std::map<std::string, at::Tensor> ref_;
};

// fp32: the two sides run the same math through different kernels.
void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_TRUE(want.defined()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double scale = std::max(1.0, want.abs().max().item<double>());
  const double diff = (got - want).abs().max().item<double>();
  EXPECT_LE(diff, 2e-5 * scale) << what << ": max abs diff " << diff;
}

TEST_F(VitTimm, ForwardFeaturesEqualTimmAtNativeAndOtherSizes) {
  at::NoGradGuard ng;
  for (const auto& [name, x] : inputs_)
    expect_close(encoder_->forward_features(x), ref("features." + name), name);
}

TEST_F(VitTimm, ForwardIntermediatesEqualTimm) {
  at::NoGradGuard ng;
  for (const auto& k : cases()) {
    SCOPED_TRACE(k.name);
    auto got = encoder_->forward_intermediates(inputs_.at(k.input), k.opts);
    if (k.opts.intermediates_only) {
      EXPECT_FALSE(got.features.defined());
      EXPECT_EQ(ref_.count("case." + k.name + ".features"), 0u);
    } else {
      expect_close(got.features, ref("case." + k.name + ".features"), "features");
    }
    size_t want_n = 0;
    while (ref_.count("case." + k.name + ".inter." + std::to_string(want_n))) ++want_n;
    ASSERT_EQ(got.intermediates.size(), want_n);
    ASSERT_EQ(got.prefix_tokens.size(), k.opts.return_prefix_tokens ? want_n : 0u);
    for (size_t i = 0; i < want_n; ++i) {
      expect_close(got.intermediates[i], ref("case." + k.name + ".inter." + std::to_string(i)), "inter");
      if (k.opts.return_prefix_tokens)
        expect_close(got.prefix_tokens[i], ref("case." + k.name + ".prefix." + std::to_string(i)), "prefix");
    }
  }
}

TEST_F(VitTimm, ResampledTableEqualsTimmResampleAbsPosEmbed) {
  for (const auto& [h, w] : kResampleGrids) {
    const std::string key = "resample." + std::to_string(h) + "x" + std::to_string(w);
    auto got = m::resample_abs_pos_embed(encoder_->pos_embed().detach(), {h, w}, {4, 4});
    expect_close(got, ref(key), key);
    // The encoder's own table for that grid is the same resampling.
    expect_close(encoder_->pos_embed_for({h, w}).detach(), ref(key), key + " (pos_embed_for)");
  }
}

TEST_F(VitTimm, BlockDropPathRatesEqualTimmDpr) {
  const at::Tensor& dpr = ref("dpr");
  ASSERT_EQ(dpr.numel(), encoder_->depth());
  for (int64_t i = 0; i < encoder_->depth(); ++i)
    EXPECT_EQ(encoder_->block(i)->drop_path_rate, dpr[i].item<double>()) << "block " << i;
}

TEST(VitEncoder, IntermediateShapesFollowTheInputGrid) {
  auto enc = perturbed_encoder(small_config(), 1);
  at::NoGradGuard ng;
  m::IntermediatesOptions o;
  o.indices = std::vector<int64_t>{1, 3};
  auto r = enc->forward_intermediates(at::randn({2, 3, 48, 40}), o);
  ASSERT_EQ(r.intermediates.size(), 2u);
  EXPECT_EQ(r.intermediates[0].sizes(), (std::vector<int64_t>{2, 48, 6, 5}));
  EXPECT_EQ(r.features.sizes(), (std::vector<int64_t>{2, 31, 48}));
  // NCHW is the NLC tensor laid out on the patch grid.
  o.output_fmt = m::FeatureFormat::kNLC;
  auto x = at::randn({2, 3, 32, 32});
  auto nlc = enc->forward_intermediates(x, o).intermediates[1];
  o.output_fmt = m::FeatureFormat::kNCHW;
  auto nchw = enc->forward_intermediates(x, o).intermediates[1];
  EXPECT_TRUE(at::equal(nchw, nlc.reshape({2, 4, 4, 48}).permute({0, 3, 1, 2})));
  // The last block's output, normed, is forward_features without the cls token.
  o.indices = int64_t{1};
  o.norm = true;
  o.output_fmt = m::FeatureFormat::kNLC;
  auto last = enc->forward_intermediates(x, o);
  EXPECT_TRUE(at::equal(last.intermediates[0], enc->forward_features(x).narrow(1, 1, 16)));
}

TEST(VitEncoder, OutOfRangeIndicesAreInputErrors) {
  m::VitEncoder enc(small_config());
  auto x = at::randn({1, 3, 32, 32});
  const std::vector<m::BlockIndices> bad = {int64_t{0}, int64_t{5}, std::vector<int64_t>{4},
                                            std::vector<int64_t>{-5}, std::vector<int64_t>{}};
  for (const auto& idx : bad) {
    m::IntermediatesOptions o;
    o.indices = idx;
    try {
      enc->forward_intermediates(x, o);
      ADD_FAILURE() << "no error for indices #" << (&idx - bad.data());
    } catch (const semaim::InputError& e) {
      EXPECT_NE(std::string(e.what()).find("forward_intermediates.indices"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(m::take_block_indices(4, std::vector<int64_t>{-1, 0, -4}), (std::vector<int64_t>{3, 0, 0}));
  EXPECT_EQ(m::take_block_indices(4, int64_t{3}), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(m::take_block_indices(3, std::monostate{}), (std::vector<int64_t>{0, 1, 2}));
}

TEST(VitEncoder, InputSizeIsCheckedUnlessDynamic) {
  m::VitConfig fixed = small_config();
  fixed.dynamic_img_size = false;
  m::VitEncoder enc(fixed);
  EXPECT_THROW(enc->forward_features(at::randn({1, 3, 48, 40})), semaim::InputError);
  m::VitEncoder dyn(small_config());
  EXPECT_EQ(dyn->forward_features(at::randn({1, 3, 48, 40})).sizes(), (std::vector<int64_t>{1, 31, 48}));
  try {
    dyn->forward_features(at::randn({1, 3, 30, 32}));
    FAIL() << "no error for a side that is not a multiple of the patch";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("patch_size 8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dyn->forward_features(at::randn({1, 1, 32, 32})), semaim::InputError);
}

TEST(VitEncoder, PositionTableIsFrozenByDefaultAndLearnableOnRequest) {
  m::VitConfig frozen = small_config();
  frozen.learnable_pos_embed = false;
  EXPECT_FALSE(m::VitEncoder(frozen)->pos_embed().requires_grad());
  // Learnable: a gradient reaches the stored table through the bicubic resampling at another size.
  m::VitEncoder enc(small_config());
  enc->forward_features(at::randn({2, 3, 48, 40})).pow(2).sum().backward();
  ASSERT_TRUE(enc->pos_embed().grad().defined());
  EXPECT_GT(enc->pos_embed().grad().abs().sum().item<double>(), 0.0);
  // Same names and order either way.
  std::vector<std::string> a, b;
  for (const auto& p : m::VitEncoder(frozen)->named_parameters()) a.push_back(p.key());
  for (const auto& p : enc->named_parameters()) b.push_back(p.key());
  EXPECT_EQ(a, b);
}

TEST(VitEncoder, InvalidDropPathRateIsAnInputError) {
  m::VitConfig c = small_config();
  c.drop_path_rate = 1.0;
  try {
    c.validate("model");
    FAIL() << "no error for drop_path_rate 1";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.drop_path_rate"), std::string::npos) << e.what();
  }
}

// timm VisionTransformer(num_classes=0) parameter count.
int64_t timm_vit_params(const m::VitConfig& c) {
  const int64_t d = c.embed_dim, hid = c.mlp_hidden();
  const int64_t block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * hid + hid) + (hid * d + d);
  return d * c.in_chans * c.patch_size * c.patch_size + d + d + (c.num_patches() + 1) * d + c.depth * block +
         2 * d;
}

TEST(VitRegistry, EncoderSizesMatchTimmAndTheAimModels) {
  EXPECT_EQ(m::registered_encoders(),
            (std::vector<std::string>{"vit_base_patch16", "vit_fmnist_patch4", "vit_large_patch16",
                                      "vit_small_patch16", "vit_tiny_patch16"}));
  // Counts of the venv's timm vit_*_patch16_224(num_classes=0).
  EXPECT_EQ(timm_vit_params(m::vit_config_by_name("vit_tiny_patch16")), 5524416);
  EXPECT_EQ(timm_vit_params(m::vit_config_by_name("vit_small_patch16")), 21665664);
  EXPECT_EQ(timm_vit_params(m::vit_config_by_name("vit_base_patch16")), 85798656);
  EXPECT_EQ(timm_vit_params(m::vit_config_by_name("vit_large_patch16")), 303301632);
  for (const std::string size : {"fmnist_patch4", "tiny_patch16"}) {
    const m::VitConfig c = m::vit_config_by_name("vit_" + size);
    int64_t built = 0;
    for (const auto& p : m::VitEncoder(c)->parameters()) built += p.numel();
    EXPECT_EQ(built, timm_vit_params(c)) << size;
  }
  // Each aim_<size> pretrains exactly the vit_<size> encoder.
  for (const std::string size :
       {"fmnist_patch4", "tiny_patch16", "small_patch16", "base_patch16", "large_patch16"}) {
    const m::VitConfig v = m::vit_config_by_name("vit_" + size), a = m::aim_config_by_name("aim_" + size).vit;
    EXPECT_EQ(std::tie(v.img_size, v.patch_size, v.in_chans, v.embed_dim, v.depth, v.num_heads, v.mlp_ratio),
              std::tie(a.img_size, a.patch_size, a.in_chans, a.embed_dim, a.depth, a.num_heads, a.mlp_ratio))
        << size;
  }
  try {
    m::vit_config_by_name("vit_bsae_patch16");
    FAIL() << "no error for an unknown name";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'vit_base_patch16'"), std::string::npos) << e.what();
  }
}

}  // namespace

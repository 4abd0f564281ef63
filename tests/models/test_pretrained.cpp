// Pretrained encoder weights from users' files (finetune.init): a reference SemAIM / MAE torch.save
// checkpoint written by Python (tests/io/make_pth.py) gives the golden reference model's encoder tokens, timm
// safetensors give timm's forward_features (position table resampled as timm does), semaim checkpoints and
// exports load, and files of other architectures or formats are InputErrors naming the file and the key.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "input_error.h"
#include "python_suite.h"
#include "semaim/io/safetensors.h"
#include "semaim/models/aim.h"
#include "semaim/models/pretrained.h"
#include "semaim/models/vit.h"
#include "semaim/models/weights.h"
#include "semaim_paths.h"

namespace {

namespace fs = std::filesystem;
namespace m = semaim::models;
namespace io = semaim::io;
using semaim::test::expect_input_error;

const std::string kGolden = std::string(SEMAIM_GOLDEN_DIR) + "/reference_d4q4.safetensors";

// The golden reference model's encoder: 56x56 RGB, patch 4, width 64, 4 heads, 4 blocks.
m::VitConfig golden_config(int64_t depth = 4, int64_t width = 64) {
  return {.img_size = 56, .patch_size = 4, .embed_dim = width, .depth = depth, .num_heads = 4};
}

// timm's vit_tiny_patch16_224 built at 32 pixels.
m::VitConfig timm_tiny_config() {
  return {.img_size = 32, .patch_size = 16, .embed_dim = 192, .depth = 12, .num_heads = 3};
}

at::Tensor tensor(const io::NamedTensors& w, const std::string& key) {
  for (const auto& [k, t] : w)
    if (k == key) return t;
  ADD_FAILURE() << "no " << key;
  return {};
}

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  auto g = got.to(at::kDouble), w = want.to(at::kDouble);
  return (g - w).norm().item<double>() / w.norm().item<double>();
}

bool contains(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// Writes the Python-made checkpoints once for the suite; the timm ones only when timm is importable.
class Pretrained : public semaim::test::PythonSuite<Pretrained> {
 protected:
  static void SetUpTestSuite() {
    if (!have_python()) return;
    const std::string out = semaim::test::quoted(dir().string());
    run_script("io/make_pth.py", "golden " + semaim::test::quoted(kGolden) + " " + out);
    run_script("io/make_pth.py", "timm " + out, &timm_skip_);
    golden_ = io::load_safetensors(kGolden).tensors;
  }

  // The golden encoder tokens from an encoder loaded from `name`; checks the report's lists too.
  static at::Tensor golden_tokens(const std::string& name, m::LoadReport* report = nullptr) {
    at::manual_seed(3);
    m::VitEncoder enc(golden_config());
    const auto r = m::load_pretrained_encoder(*enc, file(name));
    if (report) *report = r;
    enc->eval();
    at::NoGradGuard no_grad;
    return enc->forward_features(tensor(golden_, "input.images"));
  }

  static inline std::string timm_skip_;
  static inline io::NamedTensors golden_;
};

TEST_F(Pretrained, ReferencePthGivesTheGoldenEncoderTokens) {
  m::LoadReport report;
  const at::Tensor tokens = golden_tokens("ref.pth", &report);
  EXPECT_LE(rel_err(tokens, tensor(golden_, "expect.encoder_tokens")), 5e-6);
  EXPECT_EQ(report.loaded.size(), 54u);  // cls_token, pos_embed, patch_embed (2), 4 blocks x 12, norm (2)
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.resampled.empty());
  EXPECT_TRUE(report.shape_mismatch.empty());
  EXPECT_EQ(report.unexpected.size(), 69u);  // the query stream (4 x 16), the prediction head (4), the blur
  EXPECT_TRUE(contains(report.unexpected, "gaussian_blur.weight"));
  const std::string table = report.table();
  EXPECT_NE(table.find("blocks.{0-3}.* (48)"), std::string::npos) << table;
  EXPECT_NE(table.find("query_blocks.{0-3}.* (64)"), std::string::npos) << table;
  EXPECT_NE(table.find("prediction_head.* (4)"), std::string::npos) << table;
}

TEST_F(Pretrained, DdpPrefixIsStrippedAndMaeDecoderKeysDropped) {
  m::LoadReport report;
  const at::Tensor tokens = golden_tokens("ref_module.pth", &report);
  EXPECT_TRUE(at::equal(tokens, golden_tokens("ref.pth")));
  EXPECT_EQ(report.loaded.size(), 54u);
  for (const char* key :
       {"mask_token", "decoder_embed.weight", "decoder_pos_embed", "decoder_blocks.0.norm1.weight"})
    EXPECT_TRUE(contains(report.unexpected, key)) << key;
  EXPECT_NE(report.table().find("decoder_blocks.{0}.* (1)"), std::string::npos) << report.table();
}

TEST_F(Pretrained, MissingEncoderWeightsAreAFaultUnlessAllowed) {
  const std::string path = file("ref_no_norm.pth");
  m::VitEncoder enc(golden_config());
  const at::Tensor norm_before = enc->final_norm()->weight.clone();
  expect_input_error([&] { m::load_pretrained_encoder(*enc, path); },
                     {path.c_str(), "missing weight 'norm.weight'"});
  const auto report = m::load_pretrained_encoder(*enc, path, {.allow_missing = true});
  EXPECT_EQ(report.missing, (std::vector<std::string>{"norm.weight", "norm.bias"}));
  EXPECT_EQ(report.loaded.size(), 52u);
  EXPECT_TRUE(at::equal(enc->final_norm()->weight, norm_before));
}

TEST_F(Pretrained, OtherArchitecturesNameTheFileAndTheFirstKey) {
  const std::string path = file("ref.pth");
  m::VitEncoder shallow(golden_config(3));
  const auto before = m::module_weights(*shallow);
  std::vector<at::Tensor> kept;
  for (const auto& [k, t] : before) kept.push_back(t.clone());
  expect_input_error([&] { m::load_pretrained_encoder(*shallow, path); },
                     {path.c_str(), "unexpected weight 'blocks.3.norm1.weight'"});
  for (size_t i = 0; i < kept.size(); ++i)
    EXPECT_TRUE(at::equal(before[i].second, kept[i])) << before[i].first;
  m::VitEncoder deep(golden_config(5));
  expect_input_error([&] { m::load_pretrained_encoder(*deep, path); },
                     {path.c_str(), "missing weight 'blocks.4.norm1.weight'"});
  m::VitEncoder narrow(golden_config(4, 32));
  expect_input_error(
      [&] { m::load_pretrained_encoder(*narrow, path); },
      {path.c_str(), "weight 'cls_token' has shape [1, 1, 64] but the model needs [1, 1, 32]"});
}

TEST_F(Pretrained, FilesThatAreNoCheckpointAreFaults) {
  m::VitEncoder enc(golden_config());
  const std::string text = file("notes.txt");
  std::ofstream(text) << "not a checkpoint\n";
  expect_input_error([&] { m::load_pretrained_encoder(*enc, text); },
                     {text.c_str(), "neither a torch.save archive (.pth, zip) nor a safetensors file"});
  const std::string other = file("other.safetensors");
  io::save_safetensors(other, {{"encoder.weight", at::ones({2})}, {"fc.bias", at::ones({1})}});
  expect_input_error([&] { m::load_pretrained_encoder(*enc, other); },
                     {other.c_str(), "shares no key with the ViT encoder", "'encoder.weight'"});
  expect_input_error([&] { m::load_pretrained_encoder(*enc, other, {.key = "model"}); },
                     {other.c_str(), "only inside a .pth"});
  expect_input_error([&] { m::load_pretrained_encoder(*enc, dir().string()); }, "is a directory");
  expect_input_error([&] { m::load_pretrained_encoder(*enc, file("absent.pth")); }, "cannot open");
  // Cut copies of the reference checkpoint.
  std::ifstream in(file("ref.pth"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t n : {size_t{2}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    const std::string cut = file("cut" + std::to_string(n) + ".pth");
    std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(n));
    expect_input_error([&] { m::load_pretrained_encoder(*enc, cut); }, cut);
  }
}

TEST_F(Pretrained, SemaimCheckpointAndExportGiveTheSameEncoder) {
  m::AimConfig cfg;
  cfg.vit = golden_config();
  cfg.decoder_depth = 2;
  at::manual_seed(8);
  m::AimVit aim(cfg);
  {
    at::NoGradGuard no_grad;
    for (auto& p : aim->parameters()) p.add_(at::randn_like(p) * 0.05);
  }
  aim->eval();
  const auto weights = m::module_weights(*aim);
  io::NamedTensors exported;
  for (const auto& [k, t] : weights)
    if (m::AimVitImpl::is_encoder_key(k)) exported.emplace_back(k, t);
  io::save_safetensors(file("step-1.weights.safetensors"), weights);
  io::save_safetensors(file("encoder.safetensors"), exported);
  const at::Tensor x = at::randn({2, 3, 56, 56});
  at::NoGradGuard no_grad;
  const at::Tensor want = aim->encode(x);
  for (const char* name : {"step-1.weights.safetensors", "encoder.safetensors"}) {
    SCOPED_TRACE(name);
    m::VitEncoder enc(golden_config());
    const auto report = m::load_pretrained_encoder(*enc, file(name));
    enc->eval();
    EXPECT_TRUE(at::equal(enc->forward_features(x), want));
    EXPECT_TRUE(report.missing.empty());
    // The run's weights also hold the query stream and the prediction head; the export only the encoder.
    const bool run = std::string(name).starts_with("step-");
    EXPECT_EQ(report.unexpected.size(), run ? weights.size() - exported.size() : 0u);
    EXPECT_EQ(report.loaded.size(), exported.size());
  }
}

TEST_F(Pretrained, TimmSafetensorsGiveTimmFeatures) {
  if (!timm_skip_.empty()) GTEST_SKIP() << timm_skip_;
  const auto expect = io::load_safetensors(file("timm_expect.safetensors")).tensors;
  m::VitEncoder enc(timm_tiny_config());
  const auto report = m::load_pretrained_encoder(*enc, file("timm32.safetensors"));
  auto unexpected = report.unexpected;
  std::sort(unexpected.begin(), unexpected.end());
  EXPECT_EQ(unexpected, (std::vector<std::string>{"head.bias", "head.weight"}));
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.resampled.empty());
  enc->eval();
  at::NoGradGuard no_grad;
  const at::Tensor got = enc->forward_features(tensor(expect, "input"));
  EXPECT_LE((got - tensor(expect, "features32")).abs().max().item<double>(), 1e-5);
}

TEST_F(Pretrained, TimmPositionTableIsResampledAsTimmDoes) {
  if (!timm_skip_.empty()) GTEST_SKIP() << timm_skip_;
  const auto expect = io::load_safetensors(file("timm_expect.safetensors")).tensors;
  m::VitEncoder enc(timm_tiny_config());
  const auto report = m::load_pretrained_encoder(*enc, file("timm64.safetensors"));
  EXPECT_EQ(report.resampled, std::vector<std::string>{"pos_embed"});
  EXPECT_NE(report.table().find("resampled        1  pos_embed"), std::string::npos) << report.table();
  enc->eval();
  at::NoGradGuard no_grad;
  const at::Tensor got = enc->forward_features(tensor(expect, "input"));
  EXPECT_LE((got - tensor(expect, "features64to32")).abs().max().item<double>(), 1e-5);
}

// A fine-tuning model: the encoder plus its own classifier head.
class WithHeadImpl : public m::VitEncoderImpl {
 public:
  explicit WithHeadImpl(const m::VitConfig& cfg) : m::VitEncoderImpl(cfg) {
    head = register_module("head", torch::nn::Linear(cfg.embed_dim, 10));
  }
  torch::nn::Linear head{nullptr};
};

TEST_F(Pretrained, TimmHeadIsDroppedEvenWhenTheModelHasOne) {
  if (!timm_skip_.empty()) GTEST_SKIP() << timm_skip_;
  const std::string path = file("timm32.safetensors");
  WithHeadImpl model(timm_tiny_config());
  const at::Tensor head_before = model.head->weight.clone();
  expect_input_error([&] { m::load_pretrained_encoder(model, path); },
                     {path.c_str(), "missing weight 'head.weight'"});
  const auto report = m::load_pretrained_encoder(model, path, {.allow_missing = true});
  EXPECT_EQ(report.missing, (std::vector<std::string>{"head.weight", "head.bias"}));
  EXPECT_EQ(report.unexpected.size(), 2u);
  EXPECT_TRUE(report.shape_mismatch.empty());
  EXPECT_TRUE(at::equal(model.head->weight, head_before));
}

}  // namespace

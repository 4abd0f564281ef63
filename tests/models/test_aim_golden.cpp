// Golden test: semaim's AimVit against tensors from the public SemAIM reference model (tests/data/golden,
// method.md §3-4, §7), both attention paths, in float64 and float32.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>

#include "semaim/models/aim.h"
#include "semaim/models/targets.h"
#include "semaim_paths.h"

namespace {

using semaim::models::AimConfig;
using semaim::models::AimVit;
using semaim::models::TargetConfig;

struct Safetensors {
  std::map<std::string, at::Tensor> tensors;
  nlohmann::json metadata;
};

// Minimal reader for the test only (F32/F64/I64): u64 LE header length, JSON header, raw LE C-order data.
Safetensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto json = nlohmann::json::parse(header);
  Safetensors out;
  for (auto& [name, info] : json.items()) {
    if (name == "__metadata__") {
      out.metadata = info;
      continue;
    }
    const std::string dtype = info["dtype"];
    const at::ScalarType st = dtype == "F32"   ? at::kFloat
                              : dtype == "F64" ? at::kDouble
                              : dtype == "I64" ? at::kLong
                                               : throw std::runtime_error("unsupported dtype " + dtype);
    std::vector<int64_t> shape = info["shape"].get<std::vector<int64_t>>();
    const size_t begin = info["data_offsets"][0], end = info["data_offsets"][1];
    auto t = at::empty(shape, at::TensorOptions().dtype(st));
    if (static_cast<size_t>(t.nbytes()) != end - begin || end > data.size())
      throw std::runtime_error("bad offsets for " + name);
    std::memcpy(t.data_ptr(), data.data() + begin, end - begin);
    out.tensors[name] = t;
  }
  return out;
}

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  auto g = got.to(at::kDouble), w = want.to(at::kDouble);
  return (g - w).norm().item<double>() / w.norm().item<double>();
}

struct Golden {
  Safetensors file;
  AimConfig cfg;
  TargetConfig tcfg;
};

Golden load_golden(const std::string& name) {
  Golden g;
  g.file = read_safetensors(std::string(SEMAIM_GOLDEN_DIR) + "/" + name);
  auto c = nlohmann::json::parse(g.file.metadata["config"].get<std::string>());
  g.cfg.vit.img_size = c["img_size"];
  g.cfg.vit.patch_size = c["patch_size"];
  g.cfg.vit.in_chans = c["in_chans"];
  g.cfg.vit.embed_dim = c["embed_dim"];
  g.cfg.vit.depth = c["depth"];
  g.cfg.vit.num_heads = c["num_heads"];
  g.cfg.decoder_depth = c["query_depth"];
  EXPECT_EQ(c["prediction_head_type"], "MLP");
  g.cfg.head = "mlp";
  g.tcfg.blur_kernel = c["gaussian_kernel_size"];
  g.tcfg.blur_sigma = c["gaussian_sigma"];
  g.tcfg.norm_pix = c["norm_pix_loss"];
  EXPECT_EQ(c["loss_type"], "L2");
  g.tcfg.loss = "l2";
  return g;
}

// The model with the reference parameters; every semaim parameter must have a reference counterpart.
AimVit build_model(const Golden& g, const std::string& attention, at::ScalarType dtype) {
  AimConfig cfg = g.cfg;
  cfg.attention = attention;
  AimVit model(cfg);
  torch::NoGradGuard no_grad;
  size_t copied = 0;
  for (auto& p : model->named_parameters()) {
    auto it = g.file.tensors.find("param." + p.key());
    if (it == g.file.tensors.end()) throw std::runtime_error("reference lacks " + p.key());
    p.value().copy_(it->second);
    ++copied;
  }
  // The reference also stores its blur kernel, which semaim keeps outside the model.
  size_t reference_params = 0;
  for (auto& [name, t] : g.file.tensors)
    if (name.rfind("param.", 0) == 0 && name != "param.gaussian_blur.weight") ++reference_params;
  EXPECT_EQ(copied, reference_params);
  model->to(dtype);
  return model;
}

struct Tolerances {
  double out, grad;
};

void check_against_reference(const std::string& file, const std::string& attention, at::ScalarType dtype,
                             Tolerances tol) {
  SCOPED_TRACE(file + " " + attention + " " + c10::toString(dtype));
  Golden g = load_golden(file);
  AimVit model = build_model(g, attention, dtype);
  const auto& t = g.file.tensors;
  auto imgs = t.at("input.images").to(dtype);
  auto keys = t.at("input.keys");
  // The reference's float32 blur buffer; semaim's own kernel is checked separately below.
  auto kernel = t.at("param.gaussian_blur.weight")[0][0];

  auto pred = model->forward(imgs, keys);
  auto target = semaim::models::pixel_target(imgs, g.cfg.vit.patch_size, g.tcfg, kernel);
  auto loss = semaim::models::pixel_loss(pred, target, g.tcfg.loss);
  loss.backward();

  EXPECT_EQ(pred.scalar_type(), dtype);
  EXPECT_LE(rel_err(pred, t.at("expect.pred").narrow(1, 1, pred.size(1))), tol.out);
  EXPECT_LE(rel_err(target, t.at("expect.target")), tol.out);
  EXPECT_LE(rel_err(loss.reshape({1}), t.at("expect.loss")), tol.out);
  auto params = model->named_parameters();
  int grads = 0;
  for (auto& [name, want] : t) {
    if (name.rfind("expect.grad.", 0) != 0) continue;
    const std::string key = name.substr(std::strlen("expect.grad."));
    SCOPED_TRACE("grad " + key);
    ASSERT_TRUE(params.contains(key));
    EXPECT_LE(rel_err(params[key].grad(), want), tol.grad);
    ++grads;
  }
  EXPECT_EQ(grads, 6);
  torch::NoGradGuard no_grad;
  EXPECT_LE(rel_err(model->encode(imgs), t.at("expect.encoder_tokens")), tol.out);
}

// Relative-error bounds on outputs and gradients, with room above the rounding of each precision.
constexpr Tolerances kF64{1e-13, 1e-13};
constexpr Tolerances kF32{5e-6, 5e-6};

TEST(AimGolden, CausalPathMatchesReferenceFloat64Step1) {
  check_against_reference("reference_d4q4.safetensors", "causal", at::kDouble, kF64);
}
TEST(AimGolden, CausalPathMatchesReferenceFloat64Step2) {
  check_against_reference("reference_d4q2.safetensors", "causal", at::kDouble, kF64);
}
TEST(AimGolden, DensePathMatchesReferenceFloat64Step1) {
  check_against_reference("reference_d4q4.safetensors", "dense", at::kDouble, kF64);
}
TEST(AimGolden, DensePathMatchesReferenceFloat64Step2) {
  check_against_reference("reference_d4q2.safetensors", "dense", at::kDouble, kF64);
}
TEST(AimGolden, CausalPathMatchesReferenceFloat32Step1) {
  check_against_reference("reference_d4q4.safetensors", "causal", at::kFloat, kF32);
}
TEST(AimGolden, CausalPathMatchesReferenceFloat32Step2) {
  check_against_reference("reference_d4q2.safetensors", "causal", at::kFloat, kF32);
}
TEST(AimGolden, DensePathMatchesReferenceFloat32Step1) {
  check_against_reference("reference_d4q4.safetensors", "dense", at::kFloat, kF32);
}
TEST(AimGolden, DensePathMatchesReferenceFloat32Step2) {
  check_against_reference("reference_d4q2.safetensors", "dense", at::kFloat, kF32);
}

// semaim's own sin-cos table equals the reference's stored pos_embed (float32 rounding of float64 values).
TEST(AimGolden, SinCosTableMatchesReferencePosEmbed) {
  Golden g = load_golden("reference_d4q4.safetensors");
  auto want = g.file.tensors.at("param.pos_embed");
  auto got = semaim::models::sincos_pos_embed_2d(64, 14, 14);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-7);
  // A freshly built model carries the same table.
  AimVit model(g.cfg);
  EXPECT_TRUE(at::equal(model->pos_embed(), got));
}

// With semaim's float64 kernel the target differs from the reference's only by the reference kernel's
// float32 rounding (~1e-8 relative).
TEST(AimGolden, OwnBlurKernelAndForwardLossMatchReferenceToKernelPrecision) {
  Golden g = load_golden("reference_d4q4.safetensors");
  const auto& t = g.file.tensors;
  auto ref_kernel = t.at("param.gaussian_blur.weight");
  auto own = semaim::models::gaussian_kernel2d(9, 1.0, at::kDouble);
  // The reference computes its kernel in float32: a few float32 ulps of the largest value.
  const double ulps =
      4.0 * static_cast<double>(std::numeric_limits<float>::epsilon()) * own.max().item<double>();
  for (int64_t c = 0; c < 3; ++c)
    EXPECT_LE((ref_kernel[c][0].to(at::kDouble) - own).abs().max().item<double>(), ulps);
  AimVit model = build_model(g, "causal", at::kDouble);
  auto imgs = t.at("input.images").to(at::kDouble);
  auto target = semaim::models::pixel_target(imgs, 4, g.tcfg);
  EXPECT_LE(rel_err(target, t.at("expect.target")), 1e-7);
  auto loss = model->forward_loss(imgs, t.at("input.keys"), g.tcfg);
  EXPECT_LE(rel_err(loss.reshape({1}), t.at("expect.loss")), 1e-7);
}

}  // namespace

// The fine-tuning losses against a hand computation, torch's cross_entropy (probability targets, label
// smoothing) and timm's SoftTargetCrossEntropy / LabelSmoothingCrossEntropy
// (tests/models/timm_loss_reference.py).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "input_error.h"
#include "run_command.h"
#include "semaim/models/losses.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace m = semaim::models;
using nlohmann::json;
using semaim::test::expect_input_error;

namespace {

json as_json(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(at::kDouble);
  return {{"shape", t.sizes().vec()},
          {"data", std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel())}};
}

}  // namespace

TEST(SoftTargetCrossEntropy, EqualsHandComputationAndTorchProbabilityTargets) {
  const at::Tensor logits = at::tensor({1.0f, 2.0f, 3.0f, 0.0f, 0.0f, 0.0f}).reshape({2, 3});
  const at::Tensor soft = at::tensor({0.0f, 0.0f, 1.0f, 0.5f, 0.5f, 0.0f}).reshape({2, 3});
  // Row 0: -log softmax_2 = log(e + e^2 + e^3) - 3; row 1: -log(1/3) whatever the weights.
  const double hand = 0.5 * (std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0 + std::log(3.0));
  const at::Tensor loss = m::soft_target_cross_entropy(logits, soft);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_NEAR(loss.item<double>(), hand, 1e-6);
  at::manual_seed(3);
  const at::Tensor lg = at::randn({8, 10});
  const at::Tensor sm = at::softmax(at::randn({8, 10}), -1);
  EXPECT_NEAR(m::soft_target_cross_entropy(lg, sm).item<double>(),
              at::cross_entropy_loss(lg, sm).item<double>(), 1e-6);
  expect_input_error([&] { (void)m::soft_target_cross_entropy(lg, sm.narrow(1, 0, 5)); }, "do not match");
}

TEST(LabelSmoothingCrossEntropy, EqualsTorchCrossEntropyWithSmoothingAndPlainCeAtZero) {
  at::manual_seed(4);
  const at::Tensor lg = at::randn({8, 10});
  const at::Tensor y = at::randint(0, 10, {8});
  for (double s : {0.0, 0.1, 0.3}) {
    const double ref = at::cross_entropy_loss(lg, y, {}, at::Reduction::Mean, -100, s).item<double>();
    EXPECT_NEAR(m::label_smoothing_cross_entropy(lg, y, s).item<double>(), ref, 1e-6) << s;
  }
  // Smoothed one-hot targets give the same loss through the soft-target form.
  const double s = 0.1;
  const at::Tensor target = at::full({8, 10}, s / 10).scatter_(1, y.view({-1, 1}), 1 - s + s / 10);
  EXPECT_NEAR(m::label_smoothing_cross_entropy(lg, y, s).item<double>(),
              m::soft_target_cross_entropy(lg, target).item<double>(), 1e-6);
  expect_input_error([&] { (void)m::label_smoothing_cross_entropy(lg, y.narrow(0, 0, 4), s); },
                     "do not match");
  expect_input_error([&] { (void)m::label_smoothing_cross_entropy(lg, y, 1.0); }, "smoothing");
  expect_input_error([&] { (void)m::label_smoothing_cross_entropy(lg.flatten(), y, s); }, "(B, K)");
}

TEST(Losses, EqualTimmSoftTargetAndLabelSmoothingCrossEntropy) {
  if (!std::filesystem::exists(SEMAIM_PYTHON)) GTEST_SKIP() << "no venv python at " << SEMAIM_PYTHON;
  at::manual_seed(5);
  const at::Tensor lg = at::randn({6, 7}) * 3;
  const at::Tensor soft = at::softmax(at::randn({6, 7}) * 2, -1);
  const at::Tensor y = at::randint(0, 7, {6});
  const std::vector<double> smoothing{0.0, 0.1, 0.25};
  const semaim::test::TempDir tmp;
  const std::string in = tmp.file("in.json"), out = tmp.file("out.json");
  std::ofstream(in) << json{
      {"logits", as_json(lg)},
      {"soft", as_json(soft)},
      {"labels", std::vector<int64_t>(y.data_ptr<int64_t>(), y.data_ptr<int64_t>() + 6)},
      {"smoothing",
       smoothing}}.dump();
  const auto r =
      semaim::testing::run_command(std::string("'") + SEMAIM_PYTHON + "' '" + SEMAIM_SOURCE_DIR +
                                   "/tests/models/timm_loss_reference.py' '" + in + "' '" + out + "'");
  if (r.exit_code == 3) GTEST_SKIP() << "timm is not importable in the venv: " << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json ref = json::parse(std::ifstream(out));
  EXPECT_NEAR(m::soft_target_cross_entropy(lg, soft).item<double>(), ref["soft_target"].get<double>(), 1e-6);
  for (size_t i = 0; i < smoothing.size(); ++i)
    EXPECT_NEAR(m::label_smoothing_cross_entropy(lg, y, smoothing[i]).item<double>(),
                ref["label_smoothing"][i].get<double>(), 1e-6)
        << smoothing[i];
}

// models::attention: SDPA itself outside CPU bf16 autocast; under it, the GEMM form (attention_matmul), held to
// SDPA in fp32 on the same bf16-rounded inputs for every mask convention the models use, and in fp32 to fp32
// rounding. models::linear: ATen's fused linear, held to the module's forward.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <optional>

#include "semaim/models/vit.h"

using semaim::models::attention;

namespace {

struct Bf16Autocast {
  Bf16Autocast() {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  }
  ~Bf16Autocast() {
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
};

// q: (N, h, Tq, E), k/v: (N, h, Tk, E): the fp32 SDPA of the bf16-rounded inputs, and its input gradients for
// the upstream gradient g.
void check_against_sdpa(int64_t tq, int64_t tk, const std::optional<at::Tensor>& mask, bool causal) {
  at::manual_seed(3);
  auto round = [](at::Tensor x) { return x.to(at::kBFloat16).to(at::kFloat).requires_grad_(true); };
  const auto q = round(at::randn({2, 3, tq, 16})), k = round(at::randn({2, 3, tk, 16})),
             v = round(at::randn({2, 3, tk, 16}));
  const auto g = at::randn({2, 3, tq, 16});
  const auto want = at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal);
  const auto want_grads = torch::autograd::grad({want}, {q, k, v}, {g});
  at::Tensor got;
  {
    Bf16Autocast ac;
    got = attention(q, k, v, mask, causal);
  }
  EXPECT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(at::allclose(got.to(at::kFloat), want, 2e-2, 2e-2)) << (got.to(at::kFloat) - want).abs().max();
  const auto got_grads = torch::autograd::grad({got.to(at::kFloat)}, {q, k, v}, {g});
  for (size_t i = 0; i < 3; ++i)
    EXPECT_TRUE(at::allclose(got_grads[i], want_grads[i], 5e-2, 5e-2))
        << "input " << i << ": " << (got_grads[i] - want_grads[i]).abs().max();
}

}  // namespace

TEST(AttentionPath, OutsideBf16AutocastItIsSdpaBitForBit) {
  at::manual_seed(1);
  const auto q = at::randn({2, 3, 10, 8}), k = at::randn({2, 3, 10, 8}), v = at::randn({2, 3, 10, 8});
  EXPECT_TRUE(at::equal(attention(q, k, v, std::nullopt, true), at::scaled_dot_product_attention(q, k, v, {}, 0.0, true)));
  EXPECT_TRUE(at::equal(attention(q, k, v), at::scaled_dot_product_attention(q, k, v)));
}

TEST(AttentionPath, Bf16FormMatchesSdpaBidirectional) { check_against_sdpa(17, 17, std::nullopt, false); }

TEST(AttentionPath, Bf16FormMatchesSdpaCausal) { check_against_sdpa(17, 17, std::nullopt, true); }

TEST(AttentionPath, Bf16FormMatchesSdpaCrossAttentionOfUnequalLengths) {
  check_against_sdpa(9, 17, std::nullopt, false);
}

TEST(AttentionPath, Bf16FormMatchesSdpaWithABoolMask) {
  at::manual_seed(2);
  auto mask = at::rand({2, 1, 17, 17}) > 0.4;
  mask.select(3, 0).fill_(true);  // every query sees key 0, as every row of the models' masks sees cls
  check_against_sdpa(17, 17, mask, false);
}

namespace {

// attention_matmul in fp32, no autocast, against SDPA: outputs and input gradients to fp32 rounding.
void check_matmul_form_fp32(int64_t tq, int64_t tk, const std::optional<at::Tensor>& mask, bool causal) {
  at::manual_seed(4);
  const auto q = at::randn({2, 3, tq, 16}).requires_grad_(true), k = at::randn({2, 3, tk, 16}).requires_grad_(true),
             v = at::randn({2, 3, tk, 16}).requires_grad_(true);
  const auto g = at::randn({2, 3, tq, 16});
  const auto want = at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal);
  const auto got = semaim::models::attention_matmul(q, k, v, mask, causal);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max();
  const auto want_grads = torch::autograd::grad({want}, {q, k, v}, {g});
  const auto got_grads = torch::autograd::grad({got}, {q, k, v}, {g});
  for (size_t i = 0; i < 3; ++i)
    EXPECT_TRUE(at::allclose(got_grads[i], want_grads[i], 1e-5, 1e-5))
        << "input " << i << ": " << (got_grads[i] - want_grads[i]).abs().max();
}

}  // namespace

TEST(AttentionPath, MatmulFormEqualsSdpaInFp32) {
  check_matmul_form_fp32(17, 17, std::nullopt, false);
  check_matmul_form_fp32(17, 17, std::nullopt, true);
  check_matmul_form_fp32(9, 17, std::nullopt, false);
  check_matmul_form_fp32(17, 9, std::nullopt, true);  // Tq > Tk: causal is top-left aligned, as SDPA's
  at::manual_seed(5);
  auto mask = at::rand({2, 1, 17, 17}) > 0.4;
  mask.select(3, 0).fill_(true);
  check_matmul_form_fp32(17, 17, mask, false);
}

// The matmul form runs softmax on bf16 scores; ATen's kernel must keep the row max and sum in fp32, so the result
// is the fp32 softmax of the same values, rounded once to bf16 (at most one bf16 ulp apart, from the rounding of
// exp(x - max) / sum). A bf16 running sum over 300 terms would be off by several percent.
TEST(AttentionPath, Bf16SoftmaxKeepsFp32Statistics) {
  at::manual_seed(6);
  const auto x = (at::randn({64, 300}) * 3).to(at::kBFloat16);
  const auto got = x.softmax(-1).to(at::kFloat);
  const auto want = x.to(at::kFloat).softmax(-1);
  const auto rel = ((got - want).abs() / want).max().item<double>();
  EXPECT_LE(rel, 1.0 / 128) << "largest relative error " << rel;  // one bf16 ulp: 2^-7
  const auto row_sums = got.sum(-1);
  EXPECT_TRUE(at::allclose(row_sums, at::ones_like(row_sums), 0, 2e-2)) << row_sums;
}

// models::linear is ATen's linear (one fused addmm) with the module's weight and bias: the same values as the
// module's own forward for inputs of 2, 3 and 4 dims and for a strided input, and under bf16 autocast the
// lower-precision output autocast gives a Linear.
TEST(Linear, EqualsTheModuleForwardForEveryInputRank) {
  at::manual_seed(7);
  torch::nn::Linear lin(16, 24);
  for (const auto& x : {at::randn({5, 16}), at::randn({3, 5, 16}), at::randn({2, 3, 5, 16}),
                        at::randn({3, 16, 5}).transpose(1, 2)}) {
    const auto got = semaim::models::linear(lin, x), want = lin(x);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-6)) << (got - want).abs().max();
  }
  Bf16Autocast ac;
  EXPECT_EQ(semaim::models::linear(lin, at::randn({3, 5, 16})).scalar_type(), at::kBFloat16);
}

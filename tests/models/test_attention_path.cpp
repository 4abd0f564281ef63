// models::attention: SDPA itself outside CPU bf16 autocast; under it, the matmul + fp32-softmax form, held to
// SDPA in fp32 on the same bf16-rounded inputs for every mask convention the models use.
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

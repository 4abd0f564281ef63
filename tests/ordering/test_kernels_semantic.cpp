// Tests of the fused semantic_order op (kernels/semantic_order, method.md §6): the CPU twin equals the ATen
// reference (semantic_order_reference) exactly, ties included; make_keys uses it; bad input is rejected.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "ordering/kernel_test_util.h"
#include "semaim/core/errors.h"
#include "semaim/ordering/kernels.h"
#include "semaim/ordering/ordering.h"

namespace {

using namespace semaim::ordering;
using namespace semaim::test;

// Random tokens with deliberate similarity ties: in even images the cls token is copied into two patches
// (both have the maximal cosine, 1: the center must be the lower index); every image repeats some patches.
at::Tensor tied_tokens(int64_t n, int64_t l, int64_t d, at::ScalarType dtype, uint64_t seed) {
  auto gen = seeded(seed);
  at::Tensor t = at::randn({n, l + 1, d}, gen, at::TensorOptions().dtype(at::kFloat));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = (3 * i + 1) % l, b = (7 * i + l / 2) % l;
    if (i % 2 == 0) {
      t[i][1 + std::max(a, b)].copy_(t[i][0]);
      t[i][1 + std::min(a, b)].copy_(t[i][0]);
    }
    t[i][1 + (5 * i) % l].copy_(t[i][1 + (11 * i + 2) % l]);
  }
  return t.to(dtype);
}

// Tie-breaking noise with ties: zero rows, rows of four levels (many exact ties), and plain uniform rows.
at::Tensor tied_noise(int64_t n, int64_t l, at::ScalarType dtype, uint64_t seed) {
  auto gen = seeded(seed);
  at::Tensor u = at::rand({n, l}, gen, at::TensorOptions().dtype(dtype));
  for (int64_t i = 0; i < n; ++i) {
    if (i % 3 == 0) u[i].zero_();
    if (i % 3 == 1) u[i] = at::floor(u[i] * 4) * 1e-3;
  }
  return u;
}

void expect_equal_to_reference(const at::Tensor& tokens, int64_t gh, int64_t gw, const std::string& src,
                               const at::Tensor& noise, const std::string& what) {
  const auto [order, inverse, center] = semantic_order(tokens, gh, gw, src, noise);
  const auto [r_order, r_inverse, r_center] =
      semantic_order_reference(tokens, gh, gw, parse_source(src), noise);
  ASSERT_EQ(order.scalar_type(), at::kLong) << what;
  EXPECT_TRUE(at::equal(center, r_center)) << what;
  EXPECT_TRUE(at::equal(order, r_order)) << what;
  EXPECT_TRUE(at::equal(inverse, r_inverse)) << what;
}

TEST(SemanticOrderKernel, CpuTwinEqualsReferenceWithTiesOnEveryGridSizeAndDtype) {
  uint64_t seed = 100;
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw;
    for (int64_t n : {1, 3, 64}) {
      for (at::ScalarType dt : kDtypes) {
        const at::Tensor tokens = tied_tokens(n, l, 24, dt, ++seed);
        const at::Tensor noise = tied_noise(n, l, at::kFloat, ++seed);
        for (const char* src : {"cls", "gap"}) {
          expect_equal_to_reference(tokens, g.gh, g.gw, src, noise,
                                    std::to_string(g.gh) + "x" + std::to_string(g.gw) +
                                        " N=" + std::to_string(n) + " " + c10::toString(dt) + " " + src);
        }
      }
    }
  }
}

TEST(SemanticOrderKernel, CpuTwinEqualsReferenceAt512ImagesAndFloat64Inputs) {
  for (at::ScalarType dt : kDtypes) {
    expect_equal_to_reference(tied_tokens(512, 49, 16, dt, 7), 7, 7, "cls",
                              tied_noise(512, 49, at::kFloat, 8), std::string("N=512 ") + c10::toString(dt));
  }
  // float64 tokens (the golden tensors) and float64 noise (what make_keys passes) are exact too.
  expect_equal_to_reference(tied_tokens(5, 196, 32, at::kDouble, 9), 14, 14, "gap",
                            tied_noise(5, 196, at::kDouble, 10), "float64");
  expect_equal_to_reference(tied_tokens(5, 768, 64, at::kFloat, 11), 24, 32, "cls",
                            tied_noise(5, 768, at::kDouble, 12), "24x32, D=64");
  // No images, and non-contiguous tokens and noise (a column slice of wider tensors).
  expect_equal_to_reference(tied_tokens(0, 49, 8, at::kFloat, 20), 7, 7, "cls",
                            tied_noise(0, 49, at::kFloat, 21), "N=0");
  expect_equal_to_reference(tied_tokens(4, 49, 40, at::kFloat, 22).narrow(2, 3, 30), 7, 7, "gap",
                            tied_noise(4, 60, at::kFloat, 23).narrow(1, 5, 49), "non-contiguous");
}

TEST(SemanticOrderKernel, SemanticOrder_SeedIsLowestIndexAmongTiedMaxima) {
  auto gen = seeded(13);
  at::Tensor tokens = at::randn({1, 10, 8}, gen, at::TensorOptions().dtype(at::kFloat));
  tokens[0][1 + 6].copy_(tokens[0][0] * 2);  // same direction: cosine 1, like patch 3
  tokens[0][1 + 3].copy_(tokens[0][0]);
  const auto [order, inverse, center] = semantic_order(tokens, 3, 3, "cls", at::zeros({1, 9}));
  EXPECT_EQ(center.item<int64_t>(), 3);
  // Zero noise: rings around cell (1, 0) in index order.
  const std::vector<int64_t> expected = {3, 0, 4, 6, 1, 7, 5, 2, 8};
  EXPECT_TRUE(at::equal(order[0], at::tensor(expected, at::kLong)));
  EXPECT_TRUE(at::equal(inverse[0].index_select(0, order[0]), at::arange(9, at::kLong)));
}

TEST(SemanticOrderKernel, NoiseOrdersEachRingAndNaNNoiseGoesLast) {
  auto gen = seeded(14);
  at::Tensor tokens = at::randn({1, 10, 8}, gen, at::TensorOptions().dtype(at::kFloat));
  tokens[0][1 + 4].copy_(tokens[0][0]);  // center cell 4 of a 3x3 grid
  at::Tensor noise = at::zeros({1, 9});
  noise[0][1] = 0.3, noise[0][3] = 0.2, noise[0][5] = std::nan(""), noise[0][7] = 0.1;  // ring 1
  noise[0][0] = 0.5, noise[0][8] = 0.5;                                                 // ring 2, tied
  const auto [order, inverse, center] = semantic_order(tokens, 3, 3, "cls", noise);
  const std::vector<int64_t> expected = {4, 7, 3, 1, 5, 2, 6, 0, 8};
  EXPECT_TRUE(at::equal(order[0], at::tensor(expected, at::kLong))) << order;
  expect_equal_to_reference(tokens, 3, 3, "cls", noise, "NaN noise");
}

TEST(SemanticOrderKernel, ZeroTokensAndAZeroClsTokenGiveSimilarityZeroNotNaN) {
  at::Tensor tokens = at::zeros({2, 17, 8});
  tokens[1].narrow(0, 1, 16).normal_();
  tokens[1][0].zero_();  // zero anchor: every cosine is 0, so the center is patch 0
  const at::Tensor noise = at::zeros({2, 16});
  const auto [order, inverse, center] = semantic_order(tokens, 4, 4, "cls", noise);
  EXPECT_TRUE(at::equal(center, at::zeros({2}, at::kLong)));
  expect_equal_to_reference(tokens, 4, 4, "cls", noise, "zero tokens");
  expect_equal_to_reference(tokens, 4, 4, "gap", noise, "zero tokens, gap");
}

TEST(SemanticOrderKernel, MakeKeysUsesTheFusedOrderAndStillEqualsFloat64Ranking) {
  // make_keys' semantic keys are the fused op's inverse; they equal the float64 ranking of
  // distance + tie_noise*U (ties by U) that make_keys computed before the kernels, also when the noise is
  // too large to merely break ties (then make_keys keeps the reference composition).
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw, n = 6;
    const at::Tensor tokens = tied_tokens(n, l, 16, at::kFloat, 15);
    for (double tie_noise : {1e-3, 0.0, 0.5}) {
      OrderingConfig cfg;
      cfg.tie_noise = tie_noise;
      auto gen = seeded(16);
      const at::Tensor keys = make_keys(cfg, n, g.gh, g.gw, tokens, gen, at::kCPU);
      auto gen2 = seeded(16);
      const at::Tensor u = at::rand({n, l}, gen2, at::TensorOptions().dtype(at::kDouble));
      const at::Tensor dist = grid_distance(semantic_center(tokens, cfg.source), g.gh, g.gw, at::kDouble);
      EXPECT_TRUE(at::equal(keys, rank_keys(dist + tie_noise * u, u)))
          << g.gh << "x" << g.gw << " " << tie_noise;
    }
  }
}

TEST(SemanticOrderKernel, BadShapesDtypesGridsSourcesAndDevicesThrowClearErrors) {
  const at::Tensor good = tied_tokens(2, 98, 8, at::kFloat, 17);
  const at::Tensor noise = at::zeros({2, 98});
  EXPECT_NO_THROW(semantic_order(good, 7, 14, "cls", noise));
  expect_input_error([&] { semantic_order(good, 7, 7, "cls", noise); }, "7x7 grid does not match");
  expect_input_error([&] { semantic_order(good, 0, 98, "cls", noise); }, "0x98");
  expect_input_error([&] { semantic_order(good.select(0, 0), 7, 14, "cls", noise); }, "(N, L+1, D)");
  expect_input_error([&] { semantic_order(at::Tensor(), 7, 14, "cls", noise); }, "none");
  expect_input_error([&] { semantic_order(good.to(at::kInt), 7, 14, "cls", noise); }, "Int");
  expect_input_error([&] { semantic_order(good, 7, 14, "mean", noise); }, "'mean'");
  expect_input_error([&] { semantic_order(good, 7, 14, "cls", at::zeros({2, 97})); }, "(2, 98)");
  expect_input_error([&] { semantic_order(good, 7, 14, "cls", at::zeros({2, 98}, at::kLong)); }, "Long");
  expect_input_error([&] { semantic_order(good.to(at::kMeta), 7, 14, "cls", noise.to(at::kMeta)); }, "meta");
  expect_input_error([&] { semantic_order(good, 7, 14, "cls", noise.to(at::kMeta)); }, "noise is on meta");
  // The registered op, called directly, checks its arguments too (TORCH_CHECK).
  const auto op = c10::Dispatcher::singleton()
                      .findSchemaOrThrow("semaim::semantic_order", "")
                      .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                          const at::Tensor&, int64_t, int64_t, c10::string_view, const at::Tensor&)>();
  EXPECT_NO_THROW(op.call(good, 7, 14, "gap", noise));
  EXPECT_THROW(op.call(good, 7, 7, "gap", noise), c10::Error);
  EXPECT_THROW(op.call(good, 7, 14, "max", noise), c10::Error);
  EXPECT_THROW(op.call(good, 7, 14, "cls", noise.narrow(1, 0, 50)), c10::Error);
}

TEST(SemanticOrderKernel, CudaKernelEqualsCpuTwin) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!cuda_kernels_built()) GTEST_SKIP() << "built without the CUDA kernels (kernels/*.cu)";
  // Grids past the shared-memory sort (L > 4096) take the global-memory path.
  const std::vector<Grid> grids = {{7, 7}, {14, 14}, {37, 37}, {6, 11}, {64, 64}, {65, 70}};
  for (const Grid& g : grids) {
    const int64_t l = g.gh * g.gw;
    for (at::ScalarType dt : kDtypes) {
      for (at::ScalarType nt : {at::kFloat, at::kDouble}) {
        const at::Tensor tokens = tied_tokens(3, l, 40, dt, 18);
        const at::Tensor noise = tied_noise(3, l, nt, 19);
        for (const char* src : {"cls", "gap"}) {
          const auto [o, i, c] = semantic_order(tokens, g.gh, g.gw, src, noise);
          const auto [go, gi, gc] = semantic_order(tokens.cuda(), g.gh, g.gw, src, noise.cuda());
          EXPECT_TRUE(at::equal(gc.cpu(), c)) << g.gh << "x" << g.gw << " " << src;
          EXPECT_TRUE(at::equal(go.cpu(), o)) << g.gh << "x" << g.gw << " " << src;
          EXPECT_TRUE(at::equal(gi.cpu(), i)) << g.gh << "x" << g.gw << " " << src;
        }
      }
    }
  }
}

}  // namespace

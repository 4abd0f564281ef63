// Tests of the `parts` ordering (method.md §5) and its fused op (kernels/parts_order): the CPU twin equals
// the ATen reference parts_keys exactly, ties included; the defining properties hold; bad input is rejected.
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

// Random tokens with ties: repeated patches (equal cosines, equal assignments), a patch equal to cls.
at::Tensor tied_tokens(int64_t n, int64_t l, int64_t d, at::ScalarType dtype, uint64_t seed) {
  auto gen = seeded(seed);
  at::Tensor t = at::randn({n, l + 1, d}, gen, at::TensorOptions().dtype(at::kFloat));
  for (int64_t i = 0; i < n; ++i) {
    t[i][1 + (3 * i + 1) % l].copy_(t[i][0]);
    t[i][1 + (5 * i) % l].copy_(t[i][1 + (11 * i + 2) % l]);
    t[i][1 + (7 * i + 3) % l].copy_(t[i][1 + (11 * i + 2) % l]);
  }
  return t.to(dtype);
}

// Noise with deliberate ties: a quarter of the values repeat.
at::Tensor tied_noise(int64_t n, int64_t l, uint64_t seed) {
  auto gen = seeded(seed);
  at::Tensor u = at::rand({n, l}, gen, at::TensorOptions().dtype(at::kDouble));
  return at::where(at::arange(l).remainder(4).eq(0).unsqueeze(0), at::full({1, 1}, 0.5, u.options()), u);
}

TEST(PartsOrder, CpuTwinEqualsReferenceExactly) {
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw;
    for (int64_t n : {1, 3, 64}) {
      if (n == 64 && l > 256) continue;  // keep the suite fast; 37x37 runs with N = 1, 3
      for (at::ScalarType dt : kDtypes) {
        const uint64_t seed = 100 * g.gh + 7 * g.gw + n;
        at::Tensor tok = tied_tokens(n, l, 12, dt, seed);
        at::Tensor noise = tied_noise(n, l, seed + 1);
        auto [order, inverse] = parts_order(tok, g.gh, g.gw, 4, 3, noise);
        at::Tensor ref = parts_keys(tok, g.gh, g.gw, 4, 3, noise).to(at::kLong);
        SCOPED_TRACE(std::to_string(g.gh) + "x" + std::to_string(g.gw) + " N=" + std::to_string(n) + " " +
                     std::string(c10::toString(dt)));
        ASSERT_TRUE(at::equal(inverse, ref));
        ASSERT_TRUE(at::equal(order, at::argsort(ref, /*stable=*/true, 1)));
      }
    }
  }
  // 64 images on the large grid once, fp32.
  at::Tensor tok = tied_tokens(64, 37 * 37, 8, at::kFloat, 9);
  at::Tensor noise = tied_noise(64, 37 * 37, 10);
  EXPECT_TRUE(at::equal(std::get<1>(parts_order(tok, 37, 37, 4, 2, noise)),
                        parts_keys(tok, 37, 37, 4, 2, noise).to(at::kLong)));
}

TEST(PartsOrder, EqualsReferenceForOtherKAndIterations) {
  at::Tensor tok = tied_tokens(5, 49, 6, at::kFloat, 3);
  at::Tensor noise = tied_noise(5, 49, 4);
  for (int64_t k : {1, 2, 7, 49}) {
    for (int64_t it : {0, 1, 8}) {
      EXPECT_TRUE(at::equal(std::get<1>(parts_order(tok, 7, 7, k, it, noise)),
                            parts_keys(tok, 7, 7, k, it, noise).to(at::kLong)))
          << "k=" << k << " iters=" << it;
    }
  }
}

// The defining properties, checked from the order alone: it splits into at most k runs, each starting at its
// seed and growing in grid distance from it; each seed is its run's member most similar to cls (cosine
// recomputed independently); runs come in non-increasing mean cosine to cls.
TEST(PartsOrder, PartsAreContiguousAndCenterOutFromTheirSeed) {
  const int64_t gh = 14, gw = 14, l = gh * gw, n = 4;
  at::Tensor tok = tied_tokens(n, l, 16, at::kFloat, 21);
  at::Tensor noise = tied_noise(n, l, 22);
  auto [order, inverse] = parts_order(tok, gh, gw, 4, 5, noise);
  // The cosine of each patch to cls, computed independently.
  at::Tensor t = tok / tok.norm(2, -1, true).clamp_min(1e-12);
  at::Tensor s = (t.narrow(1, 1, l) * t.narrow(1, 0, 1)).sum(-1);  // (N, L)
  for (int64_t i = 0; i < n; ++i) {
    // Split the order into parts: a new part starts where the grid distance from the current seed drops,
    // i.e. the first patch of a part is its seed (distance 0).
    std::vector<std::vector<int64_t>> parts;
    for (int64_t r = 0; r < l; ++r) {
      const int64_t j = order[i][r].item<int64_t>();
      if (parts.empty()) {
        parts.push_back({j});
        continue;
      }
      const int64_t seed = parts.back()[0];
      const int64_t last = parts.back().back();
      auto d2 = [&](int64_t p) {
        const int64_t dr = p / gw - seed / gw, dc = p % gw - seed % gw;
        return dr * dr + dc * dc;
      };
      if (d2(j) < d2(last)) {
        parts.push_back({j});
      } else {
        parts.back().push_back(j);
      }
    }
    ASSERT_GE(parts.size(), 1u);
    ASSERT_LE(parts.size(), 4u);
    double prev_mean = 1e9;
    for (const auto& p : parts) {
      // The seed is the part member most similar to cls; keys grow with distance from it (checked by split).
      double mean = 0;
      float best = -2;
      for (int64_t j : p) {
        const float v = s[i][j].item<float>();
        mean += v;
        best = std::max(best, v);
      }
      mean /= static_cast<double>(p.size());
      EXPECT_NEAR(s[i][p[0]].item<float>(), best, 1e-5);
      // Most semantic part first.
      EXPECT_LE(mean, prev_mean + 1e-5);
      prev_mean = mean;
    }
  }
}

TEST(PartsOrder, FirstPartPrecedesAllOthersAndKeysAreRanks) {
  const int64_t gh = 7, gw = 7, l = 49;
  // Two clear clusters: 10 patches along cls's direction, the rest along an orthogonal one.
  at::Tensor tok = at::zeros({1, l + 1, 4});
  tok[0][0][0] = 1.0;
  for (int64_t j = 0; j < l; ++j) {
    const bool near_cls = j % 5 == 0;
    tok[0][1 + j][near_cls ? 0 : 1] = 1.0f + 0.01f * static_cast<float>(j);
    tok[0][1 + j][near_cls ? 1 : 0] = 0.05f;
  }
  at::Tensor noise = at::zeros({1, l});
  at::Tensor keys = parts_keys(tok, gh, gw, 2, 5, noise);
  auto [order, inverse] = parts_order(tok, gh, gw, 2, 5, noise);
  EXPECT_TRUE(at::equal(std::get<0>(keys.sort(1)), at::arange(l, at::kFloat).unsqueeze(0)));
  EXPECT_TRUE(at::equal(inverse, keys.to(at::kLong)));
  for (int64_t r = 0; r < 10; ++r) EXPECT_EQ(order[0][r].item<int64_t>() % 5, 0) << "rank " << r;
  // Seed of the first part: all its members have cosine 1/sqrt(1+0.05^2/x^2), largest for the largest x
  // (j=45).
  EXPECT_EQ(order[0][0].item<int64_t>(), 45);
}

TEST(PartsOrder, BadInputThrowsInputError) {
  at::Tensor tok = at::randn({2, 50, 8});
  at::Tensor noise = at::rand({2, 49});
  EXPECT_THROW(parts_order(tok, 7, 6, 4, 5, noise), semaim::InputError);              // grid
  EXPECT_THROW(parts_order(tok, 7, 7, 0, 5, noise), semaim::InputError);              // k
  EXPECT_THROW(parts_order(tok, 7, 7, 50, 5, noise), semaim::InputError);             // k > L
  EXPECT_THROW(parts_order(tok, 7, 7, 4, -1, noise), semaim::InputError);             // iters
  EXPECT_THROW(parts_order(tok, 7, 7, 4, 5, at::rand({2, 48})), semaim::InputError);  // noise shape
  EXPECT_THROW(parts_order(tok, 7, 7, 4, 5, noise.to(at::kHalf)), semaim::InputError);
  EXPECT_THROW(parts_order(tok.to(at::kInt), 7, 7, 4, 5, noise), semaim::InputError);
  EXPECT_THROW(parts_order(at::randn({2, 49}), 7, 7, 4, 5, noise), semaim::InputError);
  EXPECT_THROW(parts_keys(tok, 7, 7, 4, 5, at::rand({3, 49})), semaim::InputError);
  // The registered op, called directly, checks its arguments too (TORCH_CHECK).
  const auto op = c10::Dispatcher::singleton()
                      .findSchemaOrThrow("semaim::parts_order", "")
                      .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, int64_t, int64_t, int64_t,
                                                                int64_t, const at::Tensor&)>();
  EXPECT_NO_THROW(op.call(tok, 7, 7, 4, 5, noise));
  EXPECT_THROW(op.call(tok, 7, 6, 4, 5, noise), c10::Error);
  EXPECT_THROW(op.call(tok, 7, 7, 50, 5, noise), c10::Error);
  EXPECT_THROW(op.call(tok, 7, 7, 4, 5, noise.to(at::kHalf)), c10::Error);
  EXPECT_THROW(op.call(tok.to(at::kInt), 7, 7, 4, 5, noise), c10::Error);
}

TEST(PartsOrder, MakeKeysUsesTheOpAndClampsK) {
  OrderingConfig cfg;
  cfg.strategy = parse_strategy("parts");
  EXPECT_EQ(strategy_name(cfg.strategy), "parts");
  EXPECT_TRUE(needs_tokens(cfg.strategy));
  at::Tensor tok = tied_tokens(3, 16, 8, at::kFloat, 5);
  auto g1 = seeded(1), g2 = seeded(1);
  at::Tensor keys = make_keys(cfg, 3, 4, 4, tok, g1, at::kCPU);
  at::Tensor u = at::rand({3, 16}, g2, at::TensorOptions().dtype(at::kDouble));
  EXPECT_TRUE(at::equal(keys, parts_keys(tok, 4, 4, 4, 5, u)));
  cfg.parts_k = 100;  // more parts than patches: clamped to L
  at::Tensor tok1 = tied_tokens(1, 4, 8, at::kFloat, 6);
  auto g3 = seeded(2);
  EXPECT_TRUE(keys_distinct(make_keys(cfg, 1, 2, 2, tok1, g3, at::kCPU)));
}

// The CUDA kernel runs core.h's sequential sums in the CPU twin's order: equal orders, bit for bit, on
// tied tokens, several grids (one past the shared-memory sort), k, iterations and all dtypes.
TEST(PartsOrder, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!cuda_kernels_built()) GTEST_SKIP() << "built without the CUDA kernels (kernels/*.cu)";
  uint64_t seed = 900;
  struct Case {
    int64_t gh, gw, k, iters;
  };
  for (const Case& c : {Case{7, 7, 4, 5}, Case{14, 14, 8, 3}, Case{6, 11, 1, 0}, Case{65, 64, 4, 2}}) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
      const int64_t l = c.gh * c.gw;
      const at::Tensor tok = tied_tokens(3, l, 40, dt, ++seed);
      auto gen = seeded(seed);
      const at::Tensor noise = at::rand({3, l}, gen, at::TensorOptions().dtype(at::kDouble));
      auto [co, ci] = parts_order(tok, c.gh, c.gw, c.k, c.iters, noise);
      auto [go, gi] = parts_order(tok.cuda(), c.gh, c.gw, c.k, c.iters, noise.cuda());
      EXPECT_TRUE(at::equal(go.cpu(), co)) << c.gh << "x" << c.gw << " " << c10::toString(dt);
      EXPECT_TRUE(at::equal(gi.cpu(), ci)) << c.gh << "x" << c.gw << " " << c10::toString(dt);
    }
  }
}

}  // namespace

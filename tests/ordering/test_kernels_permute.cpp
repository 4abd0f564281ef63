// Tests of the fused permutation gather semaim::permute_rows (kernels/permute_rows): the CPU twin equals the
// ATen index_select composition exactly, with and without the fused position-embedding add, for per-image
// and shared tables in every dtype; its autograd equals the composition's; bad input is rejected clearly.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "kernels/ops.h"
#include "kernels/permute_rows/permute_rows.h"
#include "ordering/kernel_test_util.h"
#include "semaim/ordering/kernels.h"
#include "semaim/ordering/ordering.h"

namespace {

using semaim::kernels::permute_rows;
using semaim::kernels::permute_rows_reference;
using namespace semaim::test;

// A random per-row permutation and its inverse: (n, l) int64 each.
std::pair<at::Tensor, at::Tensor> random_permutation(int64_t n, int64_t l, uint64_t seed) {
  auto gen = seeded(seed);
  at::Tensor order = at::argsort(at::rand({n, l}, gen), /*stable=*/true, 1);
  at::Tensor inverse = at::argsort(order, /*stable=*/true, 1);
  return {order, inverse};
}

TEST(PermuteRowsKernel, CpuTwinEqualsIndexSelectWithAndWithoutFusedAdd) {
  uint64_t seed = 10;
  const at::ScalarType dtypes[] = {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble};
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw;
    for (int64_t n : {1, 3, 33}) {
      for (at::ScalarType dt : dtypes) {
        auto gen = seeded(++seed);
        auto [order, inverse] = random_permutation(n, l, seed);
        const at::Tensor x = at::randn({n, l, 24}, gen, at::TensorOptions()).to(dt);
        const at::Tensor table = at::randn({l, 24}, gen, at::TensorOptions()).to(dt);
        const std::string what = std::to_string(l) + " N=" + std::to_string(n) + " " + c10::toString(dt);
        EXPECT_TRUE(at::equal(permute_rows(x, order, inverse), permute_rows_reference(x, order))) << what;
        EXPECT_TRUE(
            at::equal(permute_rows(x, order, inverse, table), permute_rows_reference(x, order, table)))
            << what;
        EXPECT_TRUE(at::equal(permute_rows(table, order, inverse), permute_rows_reference(table, order)))
            << what;
        // Gathering by the inverse undoes the gather.
        EXPECT_TRUE(at::equal(permute_rows(permute_rows(x, order, inverse), inverse, order), x)) << what;
      }
    }
  }
  auto [order, inverse] = random_permutation(512, 49, 3);
  const at::Tensor x = at::randn({512, 49, 8});
  EXPECT_TRUE(at::equal(permute_rows(x, order, inverse), permute_rows_reference(x, order))) << "N=512";
}

// x as the model hands it over: the patch embedding's (N, D, L) output seen as (N, L, D) (token axis
// unit-stride), rows narrowed out of wider ones, a permuted token-major layout, and a layout with no
// unit stride at all, each read through its strides.
TEST(PermuteRowsKernel, StridedInputsEqualTheReferenceInEveryLayout) {
  uint64_t seed = 40;
  struct Case {
    int64_t gh, gw, d;
  };
  const Case cases[] = {{7, 7, 24}, {14, 14, 200}, {16, 16, 24}, {37, 37, 200}, {6, 11, 24}, {14, 14, 1500}};
  for (const Case& c : cases) {
    const int64_t l = c.gh * c.gw, d = c.d;
    for (int64_t n : {1, 3}) {
      for (at::ScalarType dt : kDtypes) {
        auto gen = seeded(++seed);
        auto [order, inverse] = random_permutation(n, l, seed);
        const auto opts = at::TensorOptions().dtype(dt);
        const at::Tensor table = at::randn({l, d}, gen, at::TensorOptions()).to(dt);
        const std::pair<const char*, at::Tensor> layouts[] = {
            {"token-major", at::randn({n, d, l}, gen, at::TensorOptions()).to(dt).transpose(1, 2)},
            {"narrowed rows", at::randn({n, l, d + 5}, gen, at::TensorOptions()).to(dt).narrow(2, 2, d)},
            {"permuted token-major",
             at::randn({d, n, l}, gen, at::TensorOptions()).to(dt).permute({1, 2, 0})},
            {"no unit stride", at::randn({n, l, d, 2}, gen, at::TensorOptions()).to(dt).select(3, 1)},
        };
        for (const auto& [name, x] : layouts) {
          ASSERT_EQ(x.sizes(), at::IntArrayRef({n, l, d})) << name;
          ASSERT_EQ(x.scalar_type(), opts.dtype().toScalarType());
          const std::string what = std::string(name) + " L=" + std::to_string(l) + " D=" + std::to_string(d) +
                                   " N=" + std::to_string(n) + " " + c10::toString(dt);
          const at::Tensor plain = permute_rows(x, order, inverse);
          EXPECT_TRUE(plain.is_contiguous()) << what;
          EXPECT_TRUE(at::equal(plain, permute_rows_reference(x.contiguous(), order))) << what;
          EXPECT_TRUE(at::equal(permute_rows(x, order, inverse, table),
                                permute_rows_reference(x.contiguous(), order, table)))
              << what;
        }
      }
    }
  }
  // An index that is not a permutation (repeated rows) still gathers exactly, in every layout.
  {
    auto gen = seeded(42);
    const at::Tensor index = at::randint(0, 49, {3, 49}, gen, at::TensorOptions().dtype(at::kLong));
    const at::Tensor table = at::randn({49, 40}, gen, at::TensorOptions());
    for (const at::Tensor& x : {at::randn({3, 40, 49}, gen, at::TensorOptions()).transpose(1, 2),
                                at::randn({3, 49, 40}, gen, at::TensorOptions())}) {
      EXPECT_TRUE(at::equal(permute_rows(x, index, index, table), permute_rows_reference(x, index, table)));
    }
  }
  // The gradient reaches a token-major leaf exactly as through the composition.
  auto [order, inverse] = random_permutation(4, 196, 41);
  const at::Tensor base = at::randn({4, 300, 196}), table = at::randn({196, 300}),
                   w = at::randn({4, 196, 300});
  at::Tensor x1 = base.clone().requires_grad_(), x2 = base.clone().requires_grad_();
  (permute_rows(x1.transpose(1, 2), order, inverse, table) * w).sum().backward();
  (permute_rows_reference(x2.transpose(1, 2), order, table) * w).sum().backward();
  EXPECT_TRUE(at::equal(x1.grad(), x2.grad()));
}

// The gradient of a token-major x (the patch embedding's output seen as (N, L, D)) comes back in x's own
// layout, so the convolution before it gets a contiguous (N, D, gh, gw) gradient; it equals the
// composition's.
TEST(PermuteRowsKernel, TokenMajorInputGetsItsGradientInItsLayout) {
  auto [order, inverse] = random_permutation(3, 196, 61);
  const at::Tensor base = at::randn({3, 72, 196}), table = at::randn({196, 72}), w = at::randn({3, 196, 72});
  at::Tensor leaf = base.clone().requires_grad_();
  const at::Tensor x = (leaf * 1).transpose(1, 2);  // a non-leaf token-major (N, L, D)
  at::Tensor t = table.clone().requires_grad_();
  const auto grads = torch::autograd::grad({permute_rows(x, order, inverse, t)}, {x, t}, {w});
  EXPECT_EQ(grads[0].strides(), x.strides());
  EXPECT_TRUE(at::equal(grads[0], permute_rows_reference(w, inverse)));
  EXPECT_TRUE(
      at::equal(grads[1], at::zeros({196, 72}).index_add_(0, order.reshape({-1}), w.reshape({-1, 72}))));
  // A row-major x gets a row-major gradient.
  at::Tensor rows = base.transpose(1, 2).contiguous().requires_grad_();
  const auto g = torch::autograd::grad({permute_rows(rows, order, inverse, table)}, {rows}, {w})[0];
  EXPECT_TRUE(g.is_contiguous());
  EXPECT_TRUE(at::equal(g, permute_rows_reference(w, inverse)));
  // An incoming gradient with strided rows, as the model's [cls, patches] concatenation hands back, in both
  // input layouts: read in place, equal to the composition's.
  for (const bool token_major : {true, false}) {
    const at::Tensor src = token_major ? base : base.transpose(1, 2).contiguous();
    at::Tensor a = src.clone().requires_grad_(), b = src.clone().requires_grad_();
    const auto view = [&](const at::Tensor& t) { return token_major ? t.transpose(1, 2) : t; };
    const at::Tensor cls = at::zeros({3, 1, 72}), w2 = at::randn({3, 197, 72});
    (at::cat({cls, permute_rows(view(a), order, inverse, table)}, 1) * w2).sum().backward();
    (at::cat({cls, permute_rows_reference(view(b), order, table)}, 1) * w2).sum().backward();
    EXPECT_TRUE(at::equal(a.grad(), b.grad())) << token_major;
  }
  // Without the table, and through a convolution as in the model: its weight gradient matches the
  // composition's.
  at::Tensor wa = at::randn({72, 3, 4, 4}).requires_grad_(), wb = wa.detach().clone().requires_grad_();
  const at::Tensor imgs = at::randn({3, 3, 56, 56});
  (permute_rows(at::conv2d(imgs, wa, {}, 4).flatten(2).transpose(1, 2), order, inverse) * w).sum().backward();
  (permute_rows_reference(at::conv2d(imgs, wb, {}, 4).flatten(2).transpose(1, 2), order) * w)
      .sum()
      .backward();
  EXPECT_TRUE(at::allclose(wa.grad(), wb.grad(), 1e-4, 1e-4));
}

TEST(PermuteRowsKernel, MixedDtypesPromoteAsAtenAdd) {
  auto [order, inverse] = random_permutation(2, 16, 4);
  const at::Tensor x = at::randn({2, 16, 8}).to(at::kBFloat16), table = at::randn({16, 8});
  const at::Tensor got = permute_rows(x, order, inverse, table);
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(got, permute_rows_reference(x, order).to(at::kFloat) +
                                 table.index_select(0, order.reshape({-1})).view({2, 16, 8})));
}

TEST(PermuteRowsKernel, GradientsEqualTheIndexSelectComposition) {
  for (bool shared : {false, true}) {
    auto [order, inverse] = random_permutation(5, 49, 6);
    const at::Tensor base = shared ? at::randn({49, 16}) : at::randn({5, 49, 16});
    const at::Tensor table0 = at::randn({49, 16}), weight = at::randn({5, 49, 16});
    at::Tensor x1 = base.clone().requires_grad_(), t1 = table0.clone().requires_grad_();
    at::Tensor x2 = base.clone().requires_grad_(), t2 = table0.clone().requires_grad_();
    (permute_rows(x1, order, inverse, t1) * weight).sum().backward();
    (permute_rows_reference(x2, order, t2) * weight).sum().backward();
    // A table's gradient sums the images in order, as index_add does: equal in fp32, not just close.
    EXPECT_TRUE(at::equal(x1.grad(), x2.grad())) << "shared " << shared;
    EXPECT_TRUE(at::equal(t1.grad(), t2.grad())) << "shared " << shared;
  }
  // Only the table needs a gradient: it gets the sum over images, x none.
  {
    auto [order, inverse] = random_permutation(4, 25, 5);
    const at::Tensor x = at::randn({4, 25, 8}), w = at::randn({4, 25, 8});
    at::Tensor t1 = at::randn({25, 8}).requires_grad_(), t2 = t1.detach().clone().requires_grad_();
    (permute_rows(x, order, inverse, t1) * w).sum().backward();
    (permute_rows_reference(x, order, t2) * w).sum().backward();
    EXPECT_TRUE(at::equal(t1.grad(), t2.grad()));
    EXPECT_FALSE(x.grad().defined());
  }
  // No table: only x gets a gradient, exactly the scatter of the incoming one.
  auto [order, inverse] = random_permutation(3, 16, 7);
  at::Tensor x = at::randn({3, 16, 4}).requires_grad_();
  const at::Tensor w = at::randn({3, 16, 4});
  (permute_rows(x, order, inverse) * w).sum().backward();
  EXPECT_TRUE(at::equal(x.grad(), permute_rows_reference(w, inverse)));
}

// permute_rows_sum (a shared table's gradient without an (N, L, D) intermediate) equals its reference exactly
// in every dtype, for permutations and for an index with repeats, with strided rows too.
TEST(PermuteRowsKernel, SumOverImagesEqualsTheReference) {
  uint64_t seed = 80;
  for (const Grid& g : kGrids) {
    const int64_t l = g.gh * g.gw;
    for (int64_t n : {1, 3, 33}) {
      for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
        auto gen = seeded(++seed);
        auto [order, inverse] = random_permutation(n, l, seed);
        const at::Tensor x = at::randn({n, l, 24}, gen, at::TensorOptions()).to(dt);
        const std::string what = std::to_string(l) + " N=" + std::to_string(n) + " " + c10::toString(dt);
        const at::Tensor got = semaim::kernels::permute_rows_sum(x, inverse);
        EXPECT_EQ(got.sizes(), at::IntArrayRef({l, 24})) << what;
        EXPECT_EQ(got.scalar_type(), dt) << what;
        EXPECT_TRUE(at::equal(got, semaim::kernels::permute_rows_sum_reference(x, inverse))) << what;
        const at::Tensor repeats = at::randint(0, l, {n, l}, gen, at::TensorOptions().dtype(at::kLong));
        EXPECT_TRUE(at::equal(semaim::kernels::permute_rows_sum(x, repeats),
                              semaim::kernels::permute_rows_sum_reference(x, repeats)))
            << what << " repeats";
        const at::Tensor narrowed = at::randn({n, l, 30}, gen, at::TensorOptions()).to(dt).narrow(2, 3, 24);
        EXPECT_TRUE(at::equal(semaim::kernels::permute_rows_sum(narrowed, inverse),
                              semaim::kernels::permute_rows_sum_reference(narrowed, inverse)))
            << what << " narrowed";
      }
    }
  }
  // fp32: the same as index_add of every image's rows into zeros (index_select's backward).
  auto [order, inverse] = random_permutation(64, 196, 81);
  const at::Tensor x = at::randn({64, 196, 40});
  EXPECT_TRUE(at::equal(semaim::kernels::permute_rows_sum(x, inverse),
                        at::zeros({196, 40}).index_add_(0, order.reshape({-1}), x.reshape({-1, 40}))));
}

TEST(PermuteRowsKernel, BadShapesDtypesAndIndicesThrowClearErrors) {
  auto [order, inverse] = random_permutation(2, 16, 8);
  const at::Tensor x = at::randn({2, 16, 4});
  auto expect_error = [](const std::function<void()>& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { permute_rows(x, order.to(at::kInt), inverse); }, "int64");
  expect_error([&] { permute_rows(at::randn({2, 15, 4}), order, inverse); }, "x must be (N, L, D)");
  expect_error([&] { permute_rows(x, order, inverse, at::randn({15, 4})); }, "add must be (L, D)");
  expect_error([&] { permute_rows(x.to(at::kInt), order, inverse); }, "floating point");
  expect_error([&] { permute_rows(x, order + 1, inverse); }, "out of range");
  expect_error([&] { permute_rows(x, order, inverse.narrow(1, 0, 8)); }, "inverse must have index's shape");
  expect_error([&] { semaim::kernels::permute_rows_sum(x.select(2, 0), order); }, "x must be (N, L, D)");
  expect_error([&] { semaim::kernels::permute_rows_sum(x, order.to(at::kInt)); }, "int64");
  expect_error([&] { semaim::kernels::permute_rows_sum(x.to(at::kInt), order); }, "floating point");
  expect_error([&] { semaim::kernels::permute_rows_sum(x, order - 1); }, "out of range");
}

TEST(PermuteRowsKernel, CudaKernelEqualsCpuTwin) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!semaim::ordering::cuda_kernels_built())
    GTEST_SKIP() << "built without the CUDA kernels (kernels/*.cu)";
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
    auto [order, inverse] = random_permutation(7, 196, 9);
    const at::Tensor x = at::randn({7, 196, 40}).to(dt), table = at::randn({196, 40}).to(dt);
    const at::Tensor c = permute_rows(x, order, inverse, table);
    const at::Tensor g = permute_rows(x.cuda(), order.cuda(), inverse.cuda(), table.cuda());
    EXPECT_TRUE(at::equal(g.cpu(), c)) << c10::toString(dt);
    EXPECT_TRUE(at::equal(permute_rows(table.cuda(), order.cuda(), inverse.cuda()).cpu(),
                          permute_rows(table, order, inverse)))
        << c10::toString(dt);
    // The patch embedding's token-major layout, read through its strides, with and without the add.
    const at::Tensor tm = at::randn({7, 40, 196}).to(dt).transpose(1, 2);
    EXPECT_TRUE(at::equal(permute_rows(tm.cuda(), order.cuda(), inverse.cuda(), table.cuda()).cpu(),
                          permute_rows(tm, order, inverse, table)))
        << c10::toString(dt);
    EXPECT_TRUE(at::equal(permute_rows(tm.cuda(), order.cuda(), inverse.cuda()).cpu(),
                          permute_rows(tm, order, inverse)))
        << c10::toString(dt);
    // A shared table's gradient: the sum over images.
    EXPECT_TRUE(at::equal(semaim::kernels::permute_rows_sum(x.cuda(), inverse.cuda()).cpu(),
                          semaim::kernels::permute_rows_sum(x, inverse)))
        << c10::toString(dt);
    // The backward of a token-major x: its gradient in x's layout, equal to the twin's.
    const at::Tensor tmg = tm.cuda().requires_grad_();
    const at::Tensor wg = at::randn({7, 196, 40}).to(dt);
    const at::Tensor grad =
        torch::autograd::grad({permute_rows(tmg, order.cuda(), inverse.cuda())}, {tmg}, {wg.cuda()})[0];
    EXPECT_EQ(grad.strides(), tmg.strides()) << c10::toString(dt);
    EXPECT_TRUE(at::equal(grad.cpu(), permute_rows_reference(wg, inverse))) << c10::toString(dt);
    at::Tensor repeated = order.clone();
    repeated.select(0, 3).fill_(5);
    EXPECT_TRUE(at::equal(permute_rows(tm.cuda(), repeated.cuda(), inverse.cuda(), table.cuda()).cpu(),
                          permute_rows_reference(tm, repeated, table)))
        << c10::toString(dt);
  }
}

}  // namespace

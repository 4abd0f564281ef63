// Tests of the fused order_from_keys op (kernels/order_from_keys): the CPU twin equals the stable
// at::argsort reference (order_from_keys_reference) exactly, with ties, NaN and signed zeros, in every dtype.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
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

// Keys with many exact ties (few distinct values), NaNs and both zeros, in `dtype`: (n, l)
at::Tensor tied_keys(int64_t n, int64_t l, at::ScalarType dtype, uint64_t seed) {
  auto gen = seeded(seed);
  at::Tensor k = at::floor(at::randn({n, l}, gen, at::TensorOptions().dtype(at::kDouble)) * 3);
  if (at::isFloatingType(dtype)) {
    at::Tensor r = at::rand({n, l}, gen, at::TensorOptions().dtype(at::kDouble));
    k = at::where(r < 0.05, at::full_like(k, NAN), k);
    k = at::where((r >= 0.05) & (r < 0.1), at::full_like(k, -0.0), k);
    k = at::where((r >= 0.1) & (r < 0.5), k + r, k);  // distinct values too
  }
  return k.to(dtype);
}

void expect_equal_to_reference(const at::Tensor& keys, const std::string& what) {
  const Permutation p = order_from_keys(keys);
  const Permutation r = order_from_keys_reference(keys);
  ASSERT_EQ(p.order.scalar_type(), at::kLong) << what;
  EXPECT_TRUE(at::equal(p.order, r.order)) << what;
  EXPECT_TRUE(at::equal(p.inverse, r.inverse)) << what;
}

TEST(OrderFromKeysKernel, CpuTwinEqualsStableArgsortWithTiesNaNAndSignedZeros) {
  uint64_t seed = 200;
  const at::ScalarType dtypes[] = {at::kFloat, at::kBFloat16, at::kHalf,  at::kDouble,
                                   at::kLong,  at::kInt,      at::kShort, at::kChar};
  for (int64_t l : {49, 196, 256, 1369, 66}) {
    for (int64_t n : {1, 3, 64}) {
      for (at::ScalarType dt : dtypes) {
        expect_equal_to_reference(
            tied_keys(n, l, dt, ++seed),
            "L=" + std::to_string(l) + " N=" + std::to_string(n) + " " + c10::toString(dt));
      }
    }
  }
  expect_equal_to_reference(tied_keys(512, 49, at::kFloat, 1), "N=512");
  expect_equal_to_reference(tied_keys(4, 0, at::kFloat, 2), "L=0");
  expect_equal_to_reference(tied_keys(0, 5, at::kFloat, 3), "N=0");
  // Non-contiguous keys are read in their logical layout.
  expect_equal_to_reference(tied_keys(49, 8, at::kFloat, 4).t(), "transposed");
}

TEST(OrderFromKeysKernel, EqualKeysKeepIndexOrderAndNaNGoesLast) {
  const at::Tensor keys = at::tensor({2.0, NAN, -0.0, 1.0, 0.0, NAN, 1.0}, at::kFloat).view({1, 7});
  const Permutation p = order_from_keys(keys);
  const std::vector<int64_t> expected = {2, 4, 3, 6, 0, 1, 5};
  EXPECT_TRUE(at::equal(p.order[0], at::tensor(expected, at::kLong))) << p.order;
  EXPECT_TRUE(at::equal(p.inverse.gather(1, p.order), at::arange(7, at::kLong).view({1, 7})));
}

// The twin sorts by core.h's sort bits; keys of every spread map to them in torch's order: keys spread
// evenly, one far outlier, infinities and NaN among them, spanning subnormals or the whole int32 range,
// varying in few or scattered bits, and rows of one repeated key.
TEST(OrderFromKeysKernel, KeysOfEverySpreadSortLikeTheReference) {
  auto gen = seeded(77);
  const int64_t n = 6, l = 196;
  const at::Tensor r = at::randint(0, 1 << 20, {n, l}, gen, at::TensorOptions().dtype(at::kLong));
  struct Case {
    const char* what;
    at::Tensor keys;
  };
  const std::vector<Case> cases = {
      {"float ranks 0..195", at::argsort(at::rand({n, l}, gen), true, 1).to(at::kFloat)},
      {"1000 + ranks: exponent constant",
       (at::argsort(at::rand({n, l}, gen), true, 1) + 1000).to(at::kFloat)},
      {"U[0,1) floats", at::rand({n, l}, gen)},
      {"distance + 1e-3 noise",
       (at::randint(0, 12, {n, l}, gen).sqrt() + at::rand({n, l}, gen) * 1e-3).to(at::kFloat)},
      {"int32, low 3 bits", (r % 8).to(at::kInt)},
      {"int32, bits 0..8 (9-bit span, 1-bit top digit)", (r % 512).to(at::kInt)},
      {"int32, bits 3 and 27 only", ((r % 2) * 8 + ((r / 2) % 2) * (1 << 27)).to(at::kInt)},
      {"int32, 0x40000000 + bits 0..16", (r % (1 << 17) + (1 << 30)).to(at::kInt)},
      {"int32, negative and positive", (r - (1 << 19)).to(at::kInt)},
      {"int32, one key per row", at::full({n, l}, 123456, at::kInt)},
      {"float, one key per row", at::full({n, l}, -2.5, at::kFloat)},
      {"one far outlier",
       at::where(at::arange(l).view({1, l}) == 7, at::full({n, l}, 1e30), at::rand({n, l}, gen))},
      {"+-inf and NaN among finite keys",
       at::where(r % 7 == 0, at::full({n, l}, INFINITY),
                 at::where(r % 7 == 1, at::full({n, l}, -INFINITY),
                           at::where(r % 7 == 2, at::full({n, l}, NAN), at::randn({n, l}, gen))))},
      {"only infinities and NaN", at::where(r % 2 == 0, at::full({n, l}, INFINITY), at::full({n, l}, NAN))},
      {"subnormal floats", at::rand({n, l}, gen) * 1e-40f},
      {"float extremes: span overflows to inf in float",
       at::where(r % 2 == 0, at::full({n, l}, -3e38), at::full({n, l}, 3e38)) * at::rand({n, l}, gen)},
      {"int32 whole range",
       (r * 4096 - 2147483648LL + (r % 4096)).clamp(-2147483648LL, 2147483647LL).to(at::kInt)},
      {"bfloat16 uniforms with ties", at::rand({n, l}, gen).to(at::kBFloat16)},
      {"uint8", (r % 256).to(at::kByte)},
  };
  for (const Case& c : cases) expect_equal_to_reference(c.keys, c.what);
}

TEST(OrderFromKeysKernel, BadShapesDtypesAndDevicesThrowClearErrors) {
  expect_input_error([] { order_from_keys(at::zeros({4})); }, "(N, L)");
  expect_input_error([] { order_from_keys(at::zeros({2, 3, 4})); }, "(2, 3, 4)");
  expect_input_error([] { order_from_keys(at::Tensor()); }, "none");
  expect_input_error([] { order_from_keys(at::zeros({2, 3}, at::kBool)); }, "Bool");
  expect_input_error([] { order_from_keys(at::zeros({2, 3}, at::kComplexFloat)); }, "ComplexFloat");
  expect_input_error(
      [] {
        order_from_keys(at::zeros({2, 3}, at::TensorOptions().device(at::kMeta)));
      },
      "meta");
  const auto op = c10::Dispatcher::singleton()
                      .findSchemaOrThrow("semaim::order_from_keys", "")
                      .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>();
  EXPECT_NO_THROW(op.call(at::zeros({2, 3})));
  EXPECT_THROW(op.call(at::zeros({6})), c10::Error);
  EXPECT_THROW(op.call(at::zeros({2, 3}, at::kBool)), c10::Error);
}

TEST(KernelRegistration, OpsHaveACpuKernelAndACudaKernelIffTheCudaKernelsAreBuilt) {
  for (const char* name :
       {"semaim::semantic_order", "semaim::order_from_keys", "semaim::parts_order", "semaim::permute_rows"}) {
    const auto handle = c10::Dispatcher::singleton().findSchema({name, ""});
    ASSERT_TRUE(handle.has_value()) << name;
    EXPECT_TRUE(handle->hasKernelForDispatchKey(c10::DispatchKey::CPU)) << name;
    EXPECT_EQ(handle->hasKernelForDispatchKey(c10::DispatchKey::CUDA), cuda_kernels_built()) << name;
  }
}

TEST(OrderFromKeysKernel, CudaKernelEqualsCpuTwin) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!cuda_kernels_built()) GTEST_SKIP() << "built without the CUDA kernels (kernels/*.cu)";
  const at::ScalarType dtypes[] = {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble, at::kLong};
  for (int64_t l : {49, 196, 1369, 4096, 5000}) {  // 5000: past the shared-memory sort
    for (at::ScalarType dt : dtypes) {
      const at::Tensor keys = tied_keys(5, l, dt, 300);
      const Permutation c = order_from_keys(keys), g = order_from_keys(keys.cuda());
      EXPECT_TRUE(at::equal(g.order.cpu(), c.order)) << l << " " << c10::toString(dt);
      EXPECT_TRUE(at::equal(g.inverse.cpu(), c.inverse)) << l << " " << c10::toString(dt);
    }
  }
  // 1- and 2-byte keys at odd L: the shared-memory slots after them must stay 4-byte aligned.
  for (at::ScalarType dt : {at::kChar, at::kShort}) {
    const at::Tensor keys = tied_keys(5, 49, dt, 301);
    const Permutation c = order_from_keys(keys), g = order_from_keys(keys.cuda());
    EXPECT_TRUE(at::equal(g.order.cpu(), c.order)) << c10::toString(dt);
    EXPECT_TRUE(at::equal(g.inverse.cpu(), c.inverse)) << c10::toString(dt);
  }
}

}  // namespace

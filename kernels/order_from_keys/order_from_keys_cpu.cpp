// CPU twin of semaim::order_from_keys: per-row sort of indices by core.h's (key, index) order, parallel
// over rows. Reference: src/ordering order_from_keys_reference (stable at::argsort + scatter inverse).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels/ops.h"
#include "kernels/order_from_keys/core.h"

namespace semaim::kernels {

void check_order_from_keys_args(const at::Tensor& keys, c10::DeviceType device) {
  TORCH_CHECK(keys.defined() && keys.dim() == 2, "semaim::order_from_keys: keys must be (N, L), got ",
              keys.defined() ? keys.sizes() : at::IntArrayRef{});
  const auto st = keys.scalar_type();
  TORCH_CHECK(at::isFloatingType(st) || (at::isIntegralType(st, /*includeBool=*/false)),
              "semaim::order_from_keys: keys must be a real floating or integer type, got ", st);
  TORCH_CHECK(keys.device().type() == device, "semaim::order_from_keys: keys must be on a ",
              c10::DeviceTypeName(device), " device, got ", keys.device());
}

// keys: (N, L) -> order (N, L), inverse (N, L) int64
std::tuple<at::Tensor, at::Tensor> order_from_keys_cpu(const at::Tensor& keys) {
  check_order_from_keys_args(keys, c10::DeviceType::CPU);
  const at::Tensor k = keys.contiguous();
  const int64_t n = k.size(0), l = k.size(1);
  auto opts = k.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts);
  int64_t* o = order.data_ptr<int64_t>();
  int64_t* inv = inverse.data_ptr<int64_t>();
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "order_from_keys_cpu", [&] {
    using key_t = at::opmath_type<scalar_t>;
    const scalar_t* kp = k.data_ptr<scalar_t>();
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      std::vector<key_t> row(l);
      std::vector<int64_t> idx(l);
      for (int64_t i = begin; i < end; ++i) {
        for (int64_t j = 0; j < l; ++j) row[j] = static_cast<key_t>(kp[i * l + j]);
        std::iota(idx.begin(), idx.end(), int64_t(0));
        std::sort(idx.begin(), idx.end(),
                  [&](int64_t a, int64_t b) { return key_before(row[a], a, row[b], b); });
        for (int64_t j = 0; j < l; ++j) {
          o[i * l + j] = idx[j];
          inv[i * l + idx[j]] = j;
        }
      }
    });
  });
  return {order, inverse};
}

}  // namespace semaim::kernels

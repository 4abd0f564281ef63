// CPU twin of semaim::order_from_keys, parallel over rows: per row, a stable sort of the indices by core.h's
// sort bits (torch's order: NaN last, -0.0 == +0.0, ties in index order) and its inverse. Reference:
// src/ordering order_from_keys_reference (stable at::argsort + scatter inverse).
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

namespace {

// Rows [begin, end) of keys (N, L) in scalar_t, compared in their op-math type (bf16/fp16 widen to fp32
// exactly, so the order is theirs), into order and inverse.
template <typename scalar_t>
void sort_rows(const scalar_t* kp, int64_t begin, int64_t end, int64_t l, int64_t* o, int64_t* inv) {
  using key_t = at::opmath_type<scalar_t>;
  std::vector<decltype(sort_bits(key_t{}))> bits(static_cast<size_t>(l));
  std::vector<int64_t> idx(static_cast<size_t>(l));
  for (int64_t i = begin; i < end; ++i) {
    for (int64_t j = 0; j < l; ++j) bits[j] = sort_bits(static_cast<key_t>(kp[i * l + j]));
    std::iota(idx.begin(), idx.end(), int64_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return bits[a] < bits[b]; });
    for (int64_t k = 0; k < l; ++k) {
      o[i * l + k] = idx[k];
      inv[i * l + idx[k]] = k;
    }
  }
}

}  // namespace

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
    const scalar_t* kp = k.data_ptr<scalar_t>();
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) { sort_rows(kp, begin, end, l, o, inv); });
  });
  return {order, inverse};
}

}  // namespace semaim::kernels

// CPU twin of semaim::parts_order (method.md §5 `parts`): core.h's per-image k-means on one thread per image,
// parallel over images, then a sort by core.h's order. Reference: src/ordering/parts.cpp parts_keys.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "kernels/ops.h"
#include "kernels/parts_order/core.h"

namespace semaim::kernels {

void check_parts_order_args(const at::Tensor& tokens, int64_t gh, int64_t gw, int64_t k, int64_t iters,
                            const at::Tensor& noise, c10::DeviceType device) {
  check_token_op_args("semaim::parts_order", tokens, gh, gw, noise, device);
  TORCH_CHECK(k >= 1 && k <= tokens.size(1) - 1 && iters >= 0 && iters <= 1000,
              "semaim::parts_order: need 1 <= k <= L and 0 <= iters <= 1000, got k=", k, ", iters=", iters);
}

// tokens: (N, L+1, D), noise: (N, L) -> order (N, L), inverse (N, L) int64
std::tuple<at::Tensor, at::Tensor> parts_order_cpu(const at::Tensor& tokens, int64_t gh, int64_t gw,
                                                   int64_t k, int64_t iters, const at::Tensor& noise) {
  check_parts_order_args(tokens, gh, gw, k, iters, noise, c10::DeviceType::CPU);
  const at::Tensor t = tokens.contiguous(), nz = noise.contiguous();
  const int64_t n = t.size(0), l = t.size(1) - 1, d = t.size(2);
  auto opts = t.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts);
  int64_t* o = order.data_ptr<int64_t>();
  int64_t* inv = inverse.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "parts_order_cpu", [&] {
    const scalar_t* x = t.data_ptr<scalar_t>();
    auto run = [&](const auto* noise_ptr) {
      using noise_t = std::remove_const_t<std::remove_pointer_t<decltype(noise_ptr)>>;
      at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> floats(parts_floats(l, d, k));
        std::vector<int64_t> ints(parts_ints(l, k)), idx(l);
        const PartsWork w = parts_work(floats.data(), ints.data(), l, d, k);
        for (int64_t i = begin; i < end; ++i) {
          parts_image(Team{0, 1}, x + i * (l + 1) * d, l, d, k, iters, w);
          std::iota(idx.begin(), idx.end(), int64_t{0});
          std::sort(idx.begin(), idx.end(), PartsBefore<noise_t>{noise_ptr + i * l, w.a, w.seed, w.rank, gw});
          for (int64_t r = 0; r < l; ++r) {
            o[i * l + r] = idx[r];
            inv[i * l + idx[r]] = r;
          }
        }
      });
    };
    if (nz.scalar_type() == at::kDouble) {
      run(nz.data_ptr<double>());
    } else {
      run(nz.data_ptr<float>());
    }
  });
  return {order, inverse};
}

}  // namespace semaim::kernels

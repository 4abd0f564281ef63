// CPU twin of semaim::permute_rows: row gather (+ fused add of a per-position table), parallel over rows.
// Reference: index_select of the flattened rows, then + add.index_select (permute_rows_reference).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>

#include "kernels/ops.h"
#include "kernels/permute_rows/core.h"

namespace semaim::kernels {

void check_permute_rows_args(const at::Tensor& x, const at::Tensor& index,
                             const c10::optional<at::Tensor>& add, c10::DeviceType device) {
  TORCH_CHECK(index.defined() && index.dim() == 2 && index.scalar_type() == at::kLong,
              "semaim::permute_rows: index must be (N, L) int64, got ", index.sizes(), " ",
              index.scalar_type());
  const int64_t n = index.size(0), l = index.size(1);
  TORCH_CHECK(
      x.defined() && ((x.dim() == 3 && x.size(0) == n && x.size(1) == l) || (x.dim() == 2 && x.size(0) == l)),
      "semaim::permute_rows: x must be (N, L, D) = (", n, ", ", l, ", D) or a shared (L, D) table, got ",
      x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "semaim::permute_rows: x must be floating point, got ",
              x.scalar_type());
  TORCH_CHECK(x.device().type() == device && index.device() == x.device(),
              "semaim::permute_rows: x and index must be on one ", c10::DeviceTypeName(device),
              " device, got ", x.device(), " and ", index.device());
  if (add.has_value() && add->defined()) {
    TORCH_CHECK(add->dim() == 2 && add->size(0) == l && add->size(1) == x.size(-1),
                "semaim::permute_rows: add must be (L, D) = (", l, ", ", x.size(-1), "), got ", add->sizes());
    TORCH_CHECK(add->scalar_type() == x.scalar_type() && add->device() == x.device(),
                "semaim::permute_rows: add must have x's dtype and device");
  }
}

// x: (N, L, D) or (L, D), index: (N, L), add: (L, D) or none -> (N, L, D)
at::Tensor permute_rows_cpu(const at::Tensor& x, const at::Tensor& index,
                            const c10::optional<at::Tensor>& add) {
  check_permute_rows_args(x, index, add, c10::DeviceType::CPU);
  const at::Tensor xc = x.contiguous(), ic = index.contiguous();
  const bool shared = x.dim() == 2, has_add = add.has_value() && add->defined();
  const at::Tensor ac = has_add ? add->contiguous() : at::Tensor();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(-1);
  at::Tensor out = at::empty({n, l, d}, xc.options());
  const int64_t* idx = ic.data_ptr<int64_t>();
  for (int64_t r = 0; r < n * l; ++r) {
    TORCH_CHECK(idx[r] >= 0 && idx[r] < l, "semaim::permute_rows: index ", idx[r], " out of range [0, ", l,
                ")");
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "permute_rows_cpu", [&] {
    const scalar_t* xp = xc.data_ptr<scalar_t>();
    const scalar_t* ap = has_add ? ac.data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n * l, 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t src = idx[r];
        const scalar_t* row = xp + permute_src_row(r / l, src, l, shared) * d;
        scalar_t* dst = op + r * d;
        if (ap == nullptr) {
          std::memcpy(dst, row, sizeof(scalar_t) * d);
        } else {
          const scalar_t* arow = ap + src * d;
          for (int64_t i = 0; i < d; ++i) dst[i] = permute_add(row[i], arow[i]);
        }
      }
    });
  });
  return out;
}

}  // namespace semaim::kernels

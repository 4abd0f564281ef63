// CPU twins of semaim::permute_rows (row gather + fused add of a per-position table) and
// semaim::permute_rows_sum (a shared table's gradient): plain loops through x's strides, parallel over rows.
// References: permute_rows_reference and permute_rows_sum_reference (permute_rows.h).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

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

void check_permute_rows_sum_args(const at::Tensor& x, const at::Tensor& index, c10::DeviceType device) {
  TORCH_CHECK(index.defined() && index.dim() == 2 && index.scalar_type() == at::kLong,
              "semaim::permute_rows_sum: index must be (N, L) int64, got ", index.sizes(), " ",
              index.scalar_type());
  TORCH_CHECK(x.defined() && x.dim() == 3 && x.size(0) == index.size(0) && x.size(1) == index.size(1),
              "semaim::permute_rows_sum: x must be (N, L, D) = (", index.size(0), ", ", index.size(1),
              ", D), got ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "semaim::permute_rows_sum: x must be floating point, got ",
              x.scalar_type());
  TORCH_CHECK(x.device().type() == device && index.device() == x.device(),
              "semaim::permute_rows_sum: x and index must be on one ", c10::DeviceTypeName(device),
              " device, got ", x.device(), " and ", index.device());
}

namespace {

// Every value of a contiguous (N, L) index in [0, l), else an error naming the op and the value.
void check_index_range(const at::Tensor& index, int64_t l, const char* op) {
  const int64_t* idx = index.data_ptr<int64_t>();
  for (int64_t r = 0; r < index.numel(); ++r) {
    TORCH_CHECK(idx[r] >= 0 && idx[r] < l, op, ": index ", idx[r], " out of range [0, ", l, ")");
  }
}

// Output rows per task: about 32K elements, so that small D still amortizes a task.
int64_t rows_per_task(int64_t d) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(d, 1)); }

}  // namespace

// x: (N, L, D) of any strides or a shared (L, D) table, index: (N, L), add: (L, D) or none
// -> (N, L, D) contiguous
at::Tensor permute_rows_cpu(const at::Tensor& x, const at::Tensor& index,
                            const c10::optional<at::Tensor>& add) {
  check_permute_rows_args(x, index, add, c10::DeviceType::CPU);
  const at::Tensor ic = index.contiguous();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(-1);
  check_index_range(ic, l, "semaim::permute_rows");
  const bool has_add = add.has_value() && add->defined();
  const at::Tensor ac = has_add ? add->contiguous() : at::Tensor();
  at::Tensor out = at::empty({n, l, d}, x.options().memory_format(at::MemoryFormat::Contiguous));
  const RowStrides s = x.dim() == 3 ? RowStrides{x.stride(0), x.stride(1), x.stride(2)}
                                    : RowStrides{0, x.stride(0), x.stride(1)};
  const int64_t* idx = ic.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "permute_rows_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* ap = has_add ? ac.data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n * l, rows_per_task(d), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t img = r / l, src = idx[r];
        scalar_t* dst = op + r * d;
        if (ap == nullptr) {
          for (int64_t j = 0; j < d; ++j) dst[j] = xp[permute_src_offset(img, src, j, s)];
        } else {
          const scalar_t* arow = ap + src * d;
          for (int64_t j = 0; j < d; ++j)
            dst[j] = permute_add(xp[permute_src_offset(img, src, j, s)], arow[j]);
        }
      }
    });
  });
  return out;
}

// x: (N, L, D) of any strides, index: (N, L) -> (L, D) contiguous: out[p] = sum over n of x[n, index[n, p]],
// the images summed in order in the op-math type
at::Tensor permute_rows_sum_cpu(const at::Tensor& x, const at::Tensor& index) {
  check_permute_rows_sum_args(x, index, c10::DeviceType::CPU);
  const at::Tensor ic = index.contiguous();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(2);
  check_index_range(ic, l, "semaim::permute_rows_sum");
  at::Tensor out = at::empty({l, d}, x.options().memory_format(at::MemoryFormat::Contiguous));
  const RowStrides s{x.stride(0), x.stride(1), x.stride(2)};
  const int64_t* idx = ic.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "permute_rows_sum_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, l, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(static_cast<size_t>(d));
      for (int64_t p = begin; p < end; ++p) {
        std::fill(acc.begin(), acc.end(), acc_t(0));
        for (int64_t img = 0; img < n; ++img) {
          const int64_t src = idx[img * l + p];
          for (int64_t j = 0; j < d; ++j)
            acc[j] = permute_sum_add(acc[j], xp[permute_src_offset(img, src, j, s)]);
        }
        for (int64_t j = 0; j < d; ++j) op[p * d + j] = static_cast<scalar_t>(acc[j]);
      }
    });
  });
  return out;
}

}  // namespace semaim::kernels

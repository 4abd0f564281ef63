// CUDA semaim::permute_rows (row gather + fused add of a per-position table) and semaim::permute_rows_sum (a
// shared table's gradient). Same core.h math as permute_rows_cpu.cpp; references: permute_rows_reference and
// permute_rows_sum_reference (permute_rows.h).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

#include "kernels/ops.h"
#include "kernels/permute_rows/core.h"

namespace semaim::kernels {
namespace {

constexpr int kThreads = 256;

// out[n, k, j] = x[n, index[n, k], j] (+ add[index[n, k], j]), x read through its strides s.
// Launch: a grid-stride loop of 256-thread blocks (grid capped at 65535) over the N*L*D output elements,
// consecutive threads on consecutive channels of a row: coalesced writes, and coalesced reads when x's rows
// are unit-stride (s.d = 1). A token-major x (the patch embedding's output, s.l = 1) is read with stride s.d:
// one 32-byte L2 sector per element, but an image's block (0.6 MB fp32 for ViT-B) stays in L2 while its rows
// are written, so memory traffic stays about the row form's.
// Bytes: N*L*D*e reads of x + L*D*e of the table (it stays in L2: 196*768*4 = 0.6 MB for ViT-B) + N*L*D*e
// writes + N*L*8 index. FLOPs: N*L*D adds with the table; the fused add saves the (N, L, D) read + write of
// a separate x + pos.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    permute_rows_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ index,
                        const scalar_t* __restrict__ add, int64_t l, int64_t d, int64_t total, RowStrides s,
                        scalar_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t r = e / d, j = e % d;
    const int64_t src = index[r];
    CUDA_KERNEL_ASSERT(src >= 0 && src < l);
    const scalar_t v = x[permute_src_offset(r / l, src, j, s)];
    out[e] = add == nullptr ? v : permute_add(v, add[src * d + j]);
  }
}

// out[p, j] = sum over n of x[n, index[n, p], j], the images in order in the op-math type.
// Launch: a grid-stride loop of 256-thread blocks over the L*D outputs, one per thread and step, consecutive
// threads on consecutive channels (coalesced reads of each image's source row, the index broadcast).
// Bytes: N*L*D*e reads + L*D*e writes + N*L*8 index (a third of gathering into an (N, L, D) buffer and
// summing it); FLOPs: N*L*D adds.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    permute_rows_sum_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ index, int64_t n,
                            int64_t l, int64_t d, RowStrides s, scalar_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < l * d; e += stride) {
    const int64_t p = e / d, j = e % d;
    at::opmath_type<scalar_t> acc = 0;
    bool in_range = true;  // asserted after the loop: an assert inside it made ptxas spill around the call
    for (int64_t img = 0; img < n; ++img) {
      const int64_t src = index[img * l + p];
      if (src < 0 || src >= l) {
        in_range = false;
        continue;
      }
      acc = permute_sum_add(acc, x[permute_src_offset(img, src, j, s)]);
    }
    out[e] = static_cast<scalar_t>(acc);
    CUDA_KERNEL_ASSERT(in_range);
  }
}

unsigned grid_for(int64_t work) {
  return static_cast<unsigned>(std::min<int64_t>((work + kThreads - 1) / kThreads, 65535));
}

}  // namespace

// x: (N, L, D) of any strides or a shared (L, D) table, index: (N, L), add: (L, D) or none
// -> (N, L, D) contiguous
at::Tensor permute_rows_cuda(const at::Tensor& x, const at::Tensor& index,
                             const c10::optional<at::Tensor>& add) {
  check_permute_rows_args(x, index, add, c10::DeviceType::CUDA);
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor ic = index.contiguous();
  const bool has_add = add.has_value() && add->defined();
  const at::Tensor ac = has_add ? add->contiguous() : at::Tensor();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(-1), total = n * l * d;
  at::Tensor out = at::empty({n, l, d}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (total == 0) return out;
  const RowStrides s = x.dim() == 3 ? RowStrides{x.stride(0), x.stride(1), x.stride(2)}
                                    : RowStrides{0, x.stride(0), x.stride(1)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "permute_rows_cuda", [&] {
    permute_rows_kernel<scalar_t><<<grid_for(total), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<scalar_t>(), ic.data_ptr<int64_t>(), has_add ? ac.data_ptr<scalar_t>() : nullptr, l, d,
        total, s, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// x: (N, L, D) of any strides, index: (N, L) -> (L, D) contiguous
at::Tensor permute_rows_sum_cuda(const at::Tensor& x, const at::Tensor& index) {
  check_permute_rows_sum_args(x, index, c10::DeviceType::CUDA);
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor ic = index.contiguous();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(2);
  at::Tensor out = at::empty({l, d}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  const RowStrides s{x.stride(0), x.stride(1), x.stride(2)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "permute_rows_sum_cuda", [&] {
    permute_rows_sum_kernel<scalar_t><<<grid_for(l * d), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<scalar_t>(), ic.data_ptr<int64_t>(), n, l, d, s, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace semaim::kernels

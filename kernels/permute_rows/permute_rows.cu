// CUDA semaim::permute_rows: row gather (+ fused add of a per-position table) between the natural and the
// ordered token layouts. Same core.h math as permute_rows_cpu.cpp; reference: permute_rows_reference.
//
// Unit-stride rows (contiguous x, a narrowed view, a shared (L, D) table): permute_rows_kernel, a grid-stride
// loop of 256-thread blocks over the N*L*D output elements (grid capped at 65535 x 1), one element per thread
// and step, consecutive threads on consecutive columns of a row (coalesced reads of the source row, coalesced
// writes). Bytes moved: N*L*D*e reads of x + (with add) L*D*e of the table (it stays in L2: 196*768*2 = 0.3
// MB for ViT-B bf16) + N*L*D*e writes + N*L*8 index. FLOPs: N*L*D adds with add. H100 (~3 TB/s): N=256,
// L=196, D=768 bf16 moves ~154 MB -> ~51 us; fp32 ~308 MB -> ~103 us. The fused add saves the separate (N, L,
// D) read + write of `x + pos` (another ~100 us in fp32) that the unfused form runs.
//
// Token-major x (the patch embedding's (N, D, L) output seen as (N, L, D), unit stride along the tokens), as
// the CPU twin does it, without a contiguous() copy:
// - invert_kernel: one thread per (n, k) writes inverse[n, index[n, k]] = k into a -1-filled (N, L) int64 and
//   flags image n when a slot was already taken (index not a permutation). N*L*24 bytes: the fill, the
//   index read, the inverse write.
// - scatter_token_major_kernel: grid (ceil(L/32), ceil(D/32), N) of 32 x 8 threads, a 32 x 33 tile in shared
//   memory. A permutation row: read the tile x[n, p0:p0+32, j0:j0+32] along the tokens (coalesced), write
//   each token's 32 channels (+ add) to out[n, inverse[n, p]] (coalesced). A flagged image: each tile gathers
//   out[n, k0:k0+32, j0:j0+32] = x[n, index[n, k], j] directly (uncoalesced reads; exact either way).
// Bytes: the same N*L*D*e read + write as the row form (+ N*L*32 for the inverse, built and read): ~103 us
// for fp32 ViT-B at N=256 on an H100, against ~206 us for ATen's transposing copy followed by the row form.
//
// Token-major out (permute_rows.out; the backward writes the gradient of a token-major x in x's layout):
// gather_token_major_kernel, grid (ceil(L/32), ceil(D/32), N) of 32 x 8 threads, a 32 x 33 tile in shared
// memory: read 32 output tokens' source rows x[n, index[n, k], j0:j0+32] (+ add) along the channels
// (coalesced), write each channel's 32 tokens along out's token axis (coalesced). Bytes: N*L*D*e read + the
// same written + N*L*8 index; FLOPs: N*L*D adds with add. ~103 us for fp32 ViT-B at N=256 on an H100, and it
// saves the convolution backward's copy of a row-major gradient into its own layout (another ~103 us).
//
// permute_rows_sum (a shared table's gradient, out[p] = sum over n of x[n, index[n, p]]):
// permute_rows_sum_kernel, a grid-stride loop of 256-thread blocks over the L*D outputs, one per thread and
// step, consecutive threads on consecutive channels (coalesced reads of each image's source row, the index
// broadcast), the images summed in order in the op-math type. Bytes: N*L*D*e reads + L*D*e writes + N*L*8
// index; FLOPs: N*L*D adds. H100: fp32 ViT-B at N=256 reads ~154 MB -> ~51 us, where gathering into an (N, L,
// D) buffer and summing it would move ~462 MB (~154 us).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
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

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    permute_rows_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ index,
                        const scalar_t* __restrict__ add, int64_t l, int64_t d, int64_t total, int64_t sn,
                        int64_t sl, scalar_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t r = e / d, i = e % d;
    const int64_t src = index[r];
    CUDA_KERNEL_ASSERT(src >= 0 && src < l);
    const scalar_t v = x[permute_src_offset(r / l, src, sn, sl) + i];
    out[e] = add == nullptr ? v : permute_add(v, add[src * d + i]);
  }
}

// inverse[n, index[n, k]] = k over a -1-filled inverse; not_perm[n] = 1 when two k of image n share a slot.
__global__ void __launch_bounds__(kThreads)
    invert_kernel(const int64_t* __restrict__ index, int64_t l, int64_t total,
                  unsigned long long* __restrict__ inverse, int* __restrict__ not_perm) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t n = e / l, src = index[e];
    CUDA_KERNEL_ASSERT(src >= 0 && src < l);
    if (src < 0 || src >= l) {  // where device asserts are compiled out: no write outside inverse
      not_perm[n] = 1;
      continue;
    }
    const unsigned long long before =
        atomicExch(inverse + n * l + src, static_cast<unsigned long long>(e % l));
    if (before != ~0ull) not_perm[n] = 1;
  }
}

constexpr int kTileSide = 32, kTileRows = 8;

// Token-major x: x[n, p, j] at n*sn + p + j*sd. One block per (32 tokens, 32 channels, image).
template <typename scalar_t>
__global__ void __launch_bounds__(kTileSide* kTileRows)
    scatter_token_major_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ index,
                               const int64_t* __restrict__ inverse, const int* __restrict__ not_perm,
                               const scalar_t* __restrict__ add, int64_t l, int64_t d, int64_t sn, int64_t sd,
                               scalar_t* __restrict__ out) {
  __shared__ scalar_t tile[kTileSide][kTileSide + 1];
  const int64_t n = blockIdx.z, p0 = static_cast<int64_t>(blockIdx.x) * kTileSide,
                j0 = static_cast<int64_t>(blockIdx.y) * kTileSide;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const scalar_t* xn = x + permute_src_offset(n, 0, sn, 1);
  if (not_perm[n] != 0) {  // not a permutation: gather each output element from its source directly
    for (int i = ty; i < kTileSide; i += kTileRows) {
      const int64_t k = p0 + i, j = j0 + tx;
      if (k >= l || j >= d) continue;
      const int64_t src = index[n * l + k];
      const scalar_t v = xn[src + j * sd];
      out[(n * l + k) * d + j] = add == nullptr ? v : permute_add(v, add[src * d + j]);
    }
    return;
  }
  for (int i = ty; i < kTileSide; i += kTileRows) {  // tile[channel][token], read along the tokens
    const int64_t j = j0 + i, p = p0 + tx;
    if (j < d && p < l) tile[i][tx] = xn[p + j * sd];
  }
  __syncthreads();
  for (int i = ty; i < kTileSide; i += kTileRows) {  // token p's channels to its place in the order
    const int64_t p = p0 + i, j = j0 + tx;
    if (p >= l || j >= d) continue;
    const scalar_t v = tile[tx][i];
    out[(n * l + inverse[n * l + p]) * d + j] = add == nullptr ? v : permute_add(v, add[p * d + j]);
  }
}

// Token-major out (the gradient of a token-major x, in its layout): out[n, k, j] at n*on + k + j*od, x in the
// row form. One block per (32 output tokens, 32 channels, image): read the 32 tokens' source rows along the
// channels (+ add), write each channel's 32 tokens along out's token axis.
template <typename scalar_t>
__global__ void __launch_bounds__(kTileSide* kTileRows)
    gather_token_major_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ index,
                              const scalar_t* __restrict__ add, int64_t l, int64_t d, int64_t sn, int64_t sl,
                              int64_t on, int64_t od, scalar_t* __restrict__ out) {
  __shared__ scalar_t tile[kTileSide][kTileSide + 1];
  const int64_t n = blockIdx.z, k0 = static_cast<int64_t>(blockIdx.x) * kTileSide,
                j0 = static_cast<int64_t>(blockIdx.y) * kTileSide;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int i = ty; i < kTileSide; i += kTileRows) {  // tile[token][channel], read along the channels
    const int64_t k = k0 + i, j = j0 + tx;
    if (k >= l || j >= d) continue;
    const int64_t src = index[n * l + k];
    CUDA_KERNEL_ASSERT(src >= 0 && src < l);
    const scalar_t v = x[permute_src_offset(n, src, sn, sl) + j];
    tile[i][tx] = add == nullptr ? v : permute_add(v, add[src * d + j]);
  }
  __syncthreads();
  for (int i = ty; i < kTileSide; i += kTileRows) {  // channel j's tokens along out's token axis
    const int64_t j = j0 + i, k = k0 + tx;
    if (j < d && k < l) out[n * on + k + j * od] = tile[tx][i];
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    permute_rows_sum_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ index, int64_t n,
                            int64_t l, int64_t d, int64_t sn, int64_t sl, scalar_t* __restrict__ out) {
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
      acc = permute_sum_add(acc, x[permute_src_offset(img, src, sn, sl) + j]);
    }
    out[e] = static_cast<scalar_t>(acc);
    CUDA_KERNEL_ASSERT(in_range);
  }
}

}  // namespace

namespace {

// Writes the op's result into out (checked by the caller: (N, L, D), x's dtype and device, no overlap).
void permute_rows_into(const at::Tensor& x, const at::Tensor& index, const c10::optional<at::Tensor>& add,
                       at::Tensor& out) {
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor ic = index.contiguous();
  const bool has_add = add.has_value() && add->defined();
  const at::Tensor ac = has_add ? add->contiguous() : at::Tensor();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(-1);
  const int64_t total = n * l * d;
  if (total == 0) return;
  // out: contiguous, or a unit-stride token axis (the layout of a token-major x, for its gradient; up to
  // 65535 images, the grid's z limit); any other layout gets a contiguous result copied in.
  const bool out_token_major = !out.is_contiguous() && out.stride(1) == 1 && l > 1 && d > 1 && n <= 65535;
  if (!out.is_contiguous() && !out_token_major) {
    out.copy_(permute_rows_cuda(x, index, add));
    return;
  }
  // Unit-stride rows are read in place, and so is a unit-stride token axis when out is contiguous (the
  // patch embedding's output); any other layout is made contiguous first.
  const bool rows = x.dim() == 3 && (x.stride(2) == 1 || x.size(2) == 1);
  const bool token_major =
      !out_token_major && x.dim() == 3 && !rows && x.stride(1) == 1 && x.size(1) > 1 && n <= 65535;
  const at::Tensor xc = rows || token_major || (x.dim() == 2 && x.stride(1) == 1) ? x : x.contiguous();
  const int64_t sn = xc.dim() == 3 ? xc.stride(0) : 0, sl = xc.dim() == 3 ? xc.stride(1) : xc.stride(0);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const dim3 tiles(static_cast<unsigned>((l + kTileSide - 1) / kTileSide),
                   static_cast<unsigned>((d + kTileSide - 1) / kTileSide), static_cast<unsigned>(n));
  if (out_token_major) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, xc.scalar_type(), "permute_rows_cuda_out_tm", [&] {
          gather_token_major_kernel<scalar_t><<<tiles, dim3(kTileSide, kTileRows), 0, stream>>>(
              xc.data_ptr<scalar_t>(), ic.data_ptr<int64_t>(), has_add ? ac.data_ptr<scalar_t>() : nullptr, l,
              d, sn, sl, out.stride(0), out.stride(2), out.data_ptr<scalar_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
    return;
  }
  if (token_major) {
    at::Tensor inverse = at::full({n, l}, -1, ic.options());
    at::Tensor not_perm = at::zeros({n}, ic.options().dtype(at::kInt));
    const int64_t ib = std::min<int64_t>((n * l + kThreads - 1) / kThreads, 65535);
    invert_kernel<<<static_cast<unsigned>(ib), kThreads, 0, stream>>>(
        ic.data_ptr<int64_t>(), l, n * l, reinterpret_cast<unsigned long long*>(inverse.data_ptr<int64_t>()),
        not_perm.data_ptr<int>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "permute_rows_cuda_tm", [&] {
      scatter_token_major_kernel<scalar_t><<<tiles, dim3(kTileSide, kTileRows), 0, stream>>>(
          xc.data_ptr<scalar_t>(), ic.data_ptr<int64_t>(), inverse.data_ptr<int64_t>(),
          not_perm.data_ptr<int>(), has_add ? ac.data_ptr<scalar_t>() : nullptr, l, d, sn, xc.stride(2),
          out.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return;
  }
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, 65535);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "permute_rows_cuda", [&] {
    permute_rows_kernel<scalar_t><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        xc.data_ptr<scalar_t>(), ic.data_ptr<int64_t>(), has_add ? ac.data_ptr<scalar_t>() : nullptr, l, d,
        total, sn, sl, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

// x: (N, L, D) or (L, D), index: (N, L), add: (L, D) or none -> (N, L, D)
at::Tensor permute_rows_cuda(const at::Tensor& x, const at::Tensor& index,
                             const c10::optional<at::Tensor>& add) {
  check_permute_rows_args(x, index, add, c10::DeviceType::CUDA);
  at::Tensor out = at::empty({index.size(0), index.size(1), x.size(-1)},
                             x.options().memory_format(at::MemoryFormat::Contiguous));
  permute_rows_into(x, index, add, out);
  return out;
}

// As permute_rows_cuda, written into out
at::Tensor& permute_rows_out_cuda(const at::Tensor& x, const at::Tensor& index,
                                  const c10::optional<at::Tensor>& add, at::Tensor& out) {
  check_permute_rows_args(x, index, add, c10::DeviceType::CUDA);
  check_permute_rows_out(x, index, add, out);
  permute_rows_into(x, index, add, out);
  return out;
}

// x: (N, L, D), index: (N, L) -> (L, D)
at::Tensor permute_rows_sum_cuda(const at::Tensor& x, const at::Tensor& index) {
  check_permute_rows_sum_args(x, index, c10::DeviceType::CUDA);
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor ic = index.contiguous();
  const int64_t n = ic.size(0), l = ic.size(1), d = x.size(2);
  const at::Tensor xc = x.stride(2) == 1 || d == 1 ? x : x.contiguous();
  at::Tensor out = at::empty({l, d}, xc.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  const int64_t blocks = std::min<int64_t>((l * d + kThreads - 1) / kThreads, 65535);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "permute_rows_sum_cuda", [&] {
    permute_rows_sum_kernel<scalar_t>
        <<<static_cast<unsigned>(blocks), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            xc.data_ptr<scalar_t>(), ic.data_ptr<int64_t>(), n, l, d, xc.stride(0), xc.stride(1),
            out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace semaim::kernels

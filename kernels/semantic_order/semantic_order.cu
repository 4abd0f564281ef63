// CUDA semaim::semantic_order (method.md §6 steps 2-5): normalize, cosine to cls/gap, argmax, ring sort,
// fused. Same core.h math as semantic_order_cpu.cpp; reference: src/ordering semantic_order_reference.
//
// Launch: one block of 256 threads per image (grid N). make_anchor writes the fp32 anchor to an (N, D)
// scratch; argmax_patch gives each warp whole patches (lanes stride over D, fp32 sums, shuffle reduce) and
// block-reduces the argmax; sort_into_order sorts the L slots by (grid distance, noise, index) in shared
// memory (noise row + next_pow2(L) int32 slots, <= 48 KiB) for L <= 4096, in a global (N, P) scratch above.
// Bytes moved: N*(L+1)*D*e token reads (e = 2 bf16/fp16, 4 fp32; gap reads the patches twice), N*L*4
// noise (8 if float64), N*L*16 order+inverse, N*D*4 anchor scratch. FLOPs: ~4*N*L*D (two FMAs per element)
// + N*P*log2(P)^2/4 comparisons (P = next_pow2(L)), which for ViT sizes hide under the token reads.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <type_traits>

#include "kernels/bitonic.cuh"
#include "kernels/ops.h"
#include "kernels/semantic_order/core.h"

namespace semaim::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename noise_t>
struct SemanticBefore {
  const noise_t* noise;
  int center, gw;
  __device__ bool operator()(int a, int b) const {
    return semantic_before<noise_t, int>(a, b, noise, center, gw);
  }
};

template <typename acc_t>
__device__ acc_t warp_sum(acc_t v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Writes the anchor (cls token, or the mean patch for gap) to anchor (D) and returns |a|^2 to every thread.
// Threads own columns, so the gap mean reads coalesced rows. x: (L+1, D)
template <typename scalar_t, typename acc_t>
__device__ acc_t make_anchor(const scalar_t* x, int l, int d, bool gap, acc_t* anchor) {
  __shared__ acc_t warp_sq[kWarps];
  __shared__ acc_t total;
  CosAcc<acc_t> self;  // only self.pp = |a|^2 is used
  for (int k = threadIdx.x; k < d; k += kThreads) {
    acc_t a = 0;
    if (gap) {
      for (int j = 0; j < l; ++j) a += static_cast<acc_t>(x[static_cast<int64_t>(j + 1) * d + k]);
      a /= static_cast<acc_t>(l);
    } else {
      a = static_cast<acc_t>(x[k]);
    }
    anchor[k] = a;
    self.add(a, a);
  }
  const acc_t part = warp_sum(self.pp);
  if (threadIdx.x % 32 == 0) warp_sq[threadIdx.x / 32] = part;
  __syncthreads();  // also publishes the anchor to the block
  if (threadIdx.x == 0) {
    acc_t sum = 0;
    for (int w = 0; w < kWarps; ++w) sum += warp_sq[w];
    total = sum;
  }
  __syncthreads();
  return total;
}

// Returns to every thread the patch with the largest cosine to the anchor (at::argmax's tie rule), a warp per
// patch. x: (L+1, D), anchor: (D) with |a|^2 = aa
template <typename scalar_t, typename acc_t>
__device__ int argmax_patch(const scalar_t* x, int l, int d, const acc_t* anchor, acc_t aa) {
  __shared__ acc_t warp_val[kWarps];
  __shared__ int warp_idx[kWarps];
  __shared__ int seed;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  acc_t best = 0;
  int best_j = -1;
  for (int j = warp; j < l; j += kWarps) {
    const scalar_t* pj = x + static_cast<int64_t>(j + 1) * d;
    CosAcc<acc_t> s;
    for (int k = lane; k < d; k += 32) s.add(static_cast<acc_t>(pj[k]), anchor[k]);
    s.dot = warp_sum(s.dot);
    s.pp = warp_sum(s.pp);
    const acc_t sim = s.cos(aa);
    if (best_j < 0 || argmax_beats(sim, j, best, best_j)) best = sim, best_j = j;
  }
  if (lane == 0) warp_val[warp] = best, warp_idx[warp] = best_j;
  __syncthreads();
  if (threadIdx.x == 0) {
    acc_t v = warp_val[0];
    int c = warp_idx[0];
    for (int w = 1; w < kWarps; ++w) {
      if (warp_idx[w] >= 0 && (c < 0 || argmax_beats(warp_val[w], warp_idx[w], v, c))) {
        v = warp_val[w];
        c = warp_idx[w];
      }
    }
    seed = c;
  }
  __syncthreads();
  return seed;
}

template <typename scalar_t, typename noise_t>
__global__ void __launch_bounds__(kThreads)
    semantic_order_kernel(const scalar_t* __restrict__ tokens, const noise_t* __restrict__ noise, int l,
                          int d, int gw, bool gap, bool shared_sort, int p,
                          at::opmath_type<scalar_t>* __restrict__ anchor_scratch,
                          int* __restrict__ slot_scratch, int64_t* __restrict__ order,
                          int64_t* __restrict__ inverse, int64_t* __restrict__ center) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t n = blockIdx.x;
  const scalar_t* x = tokens + n * (l + 1) * d;
  const noise_t* nz = noise + n * l;
  auto* anchor = anchor_scratch + n * d;
  const int c = argmax_patch(x, l, d, anchor, make_anchor(x, l, d, gap, anchor));
  // Sort the slots by (distance, noise, index), with the noise row copied into shared memory when it fits.
  const noise_t* sort_noise = nz;
  int* slots = shared_sort ? reinterpret_cast<int*>(smem + sizeof(noise_t) * l) : slot_scratch + n * p;
  if (shared_sort) {
    noise_t* sn = reinterpret_cast<noise_t*>(smem);
    for (int i = threadIdx.x; i < l; i += kThreads) sn[i] = nz[i];
    sort_noise = sn;
  }
  sort_into_order(slots, p, l, SemanticBefore<noise_t>{sort_noise, c, gw}, order + n * l, inverse + n * l);
  if (threadIdx.x == 0) center[n] = c;
}

}  // namespace

// tokens: (N, L+1, D), noise: (N, L) -> order (N, L), inverse (N, L), center (N) int64
std::tuple<at::Tensor, at::Tensor, at::Tensor> semantic_order_cuda(const at::Tensor& tokens, int64_t gh,
                                                                   int64_t gw, c10::string_view source,
                                                                   const at::Tensor& noise) {
  const bool gap = check_semantic_order_args(tokens, gh, gw, source, noise, c10::DeviceType::CUDA);
  const int64_t n = tokens.size(0), l = tokens.size(1) - 1, d = tokens.size(2);
  TORCH_CHECK(l < (int64_t{1} << 30) && d < (int64_t{1} << 30) && n < (int64_t{1} << 31),
              "semaim::semantic_order: CUDA kernel needs L, D < 2^30 and N < 2^31, got ", tokens.sizes());
  c10::cuda::CUDAGuard guard(tokens.device());
  const at::Tensor t = tokens.contiguous(), nz = noise.contiguous();
  auto opts = t.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts),
             center = at::empty({n}, opts);
  if (n == 0) return {order, inverse, center};
  const int p = next_pow2(l);
  const bool shared_sort = l <= kSharedSortMaxL;
  at::Tensor slots = at::empty({shared_sort ? 1 : n * p}, t.options().dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "semantic_order_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor anchor = at::empty({n, d}, t.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    auto launch = [&](const auto* noise_ptr) {
      using noise_t = std::remove_const_t<std::remove_pointer_t<decltype(noise_ptr)>>;
      const size_t smem = shared_sort ? sizeof(noise_t) * l + sizeof(int) * p : 0;
      auto kernel = semantic_order_kernel<scalar_t, noise_t>;
      if (smem > 32 * 1024) {
        C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(smem)));
      }
      kernel<<<static_cast<unsigned>(n), kThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
          t.data_ptr<scalar_t>(), noise_ptr, static_cast<int>(l), static_cast<int>(d), static_cast<int>(gw),
          gap, shared_sort, p, anchor.data_ptr<acc_t>(), slots.data_ptr<int>(), order.data_ptr<int64_t>(),
          inverse.data_ptr<int64_t>(), center.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (nz.scalar_type() == at::kDouble) {
      launch(nz.data_ptr<double>());
    } else {
      launch(nz.data_ptr<float>());
    }
  });
  return {order, inverse, center};
}

}  // namespace semaim::kernels

// CUDA semaim::semantic_order (method.md §6 steps 2-5): normalize, cosine to cls/gap, argmax, ring sort,
// fused. Same core.h math as semantic_order_cpu.cpp; reference: src/ordering semantic_order_reference.
//
// Launch: one block of 256 threads per image (grid N). Phase 1 writes the fp32 anchor (cls token, or the
// mean patch for gap) to an (N, D) scratch; phase 2 gives each warp whole patches (lanes stride over D,
// fp32 sums, shuffle reduce) and block-reduces the argmax; phase 3 bitonic-sorts the L slots by
// (grid distance, noise, index) -- in shared memory (noise row + next_pow2(L) int32 slots, <= 48 KiB) for
// L <= 4096, in a global (N, next_pow2(L)) int32 scratch above.
// Bytes moved: N*(L+1)*D*e token reads (e = 2 bf16/fp16, 4 fp32; gap reads the patches twice), N*L*4
// noise (8 if float64), N*L*16 order+inverse, N*D*4 anchor scratch written (re-read from L1/L2). FLOPs:
// ~4*N*L*D (two FMAs per element) + the sort, N*P*log2(P)^2/4 comparisons (P = next_pow2(L)). H100 (~3 TB/s):
// N=256, L=196, D=768 bf16 moves ~78 MB -> ~26 us; fp32 ~155 MB -> ~52 us; N=64, L=1024, D=1024 bf16 ~134 MB
// -> ~45 us. The sort (~5e6 comparisons for N=256, L=196) hides under the reads.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

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
  int center, gw, l;
  __device__ bool operator()(int a, int b) const {
    return semantic_before<noise_t, int>(a, b, noise, center, gw, l);
  }
};

template <typename acc_t>
__device__ acc_t warp_sum(acc_t v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename scalar_t, typename noise_t>
__global__ void __launch_bounds__(kThreads)
    semantic_order_kernel(const scalar_t* __restrict__ tokens, const noise_t* __restrict__ noise, int l,
                          int d, int gw, bool gap, bool shared_sort, int p,
                          at::opmath_type<scalar_t>* __restrict__ anchor_scratch,
                          int* __restrict__ slot_scratch, int64_t* __restrict__ order,
                          int64_t* __restrict__ inverse, int64_t* __restrict__ center) {
  using acc_t = at::opmath_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ acc_t warp_val[kWarps];
  __shared__ int warp_idx[kWarps];
  __shared__ acc_t anchor_sq;
  __shared__ int seed;
  const int n = blockIdx.x, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const scalar_t* x = tokens + static_cast<int64_t>(n) * (l + 1) * d;
  const noise_t* nz = noise + static_cast<int64_t>(n) * l;
  acc_t* anchor = anchor_scratch + static_cast<int64_t>(n) * d;

  // Phase 1: the anchor and |a|^2 (threads own columns, so the gap mean reads coalesced rows).
  CosAcc<acc_t> self;
  for (int k = tid; k < d; k += kThreads) {
    acc_t a = 0;
    if (gap) {
      for (int j = 0; j < l; ++j) a += static_cast<acc_t>(x[static_cast<int64_t>(j + 1) * d + k]);
      a /= static_cast<acc_t>(l);
    } else {
      a = static_cast<acc_t>(x[k]);
    }
    anchor[k] = a;
    cos_step(self, a, a);
  }
  const acc_t part = warp_sum(self.pp);
  if (lane == 0) warp_val[warp] = part;
  __syncthreads();  // also publishes the anchor scratch to the block
  if (tid == 0) {
    acc_t s = 0;
    for (int w = 0; w < kWarps; ++w) s += warp_val[w];
    anchor_sq = s;
  }
  __syncthreads();
  const acc_t aa = anchor_sq;

  // Phase 2: cosine of every patch, a warp per patch; argmax with at::argmax's tie rule.
  acc_t best = 0;
  int best_j = -1;
  for (int j = warp; j < l; j += kWarps) {
    const scalar_t* pj = x + static_cast<int64_t>(j + 1) * d;
    CosAcc<acc_t> s;
    for (int k = lane; k < d; k += 32) cos_step(s, static_cast<acc_t>(pj[k]), anchor[k]);
    s.dot = warp_sum(s.dot);
    s.pp = warp_sum(s.pp);
    const acc_t sim = cos_finish(s, aa);
    if (best_j < 0 || argmax_beats(sim, static_cast<int64_t>(j), best, static_cast<int64_t>(best_j))) {
      best = sim;
      best_j = j;
    }
  }
  __syncthreads();  // warp_val is reused
  if (lane == 0) {
    warp_val[warp] = best;
    warp_idx[warp] = best_j;
  }
  __syncthreads();
  if (tid == 0) {
    acc_t v = warp_val[0];
    int c = warp_idx[0];
    for (int w = 1; w < kWarps; ++w) {
      if (warp_idx[w] >= 0 && (c < 0 || argmax_beats(warp_val[w], static_cast<int64_t>(warp_idx[w]), v,
                                                     static_cast<int64_t>(c)))) {
        v = warp_val[w];
        c = warp_idx[w];
      }
    }
    seed = c;
  }
  __syncthreads();
  const int c = seed;

  // Phase 3: sort slots by (distance, noise, index).
  const noise_t* sort_noise = nz;
  int* slots;
  if (shared_sort) {
    noise_t* sn = reinterpret_cast<noise_t*>(smem);
    for (int i = tid; i < l; i += kThreads) sn[i] = nz[i];
    sort_noise = sn;
    slots = reinterpret_cast<int*>(smem + sizeof(noise_t) * l);
  } else {
    slots = slot_scratch + static_cast<int64_t>(n) * p;
  }
  for (int i = tid; i < p; i += kThreads) slots[i] = i;
  __syncthreads();
  bitonic_sort(slots, p, SemanticBefore<noise_t>{sort_noise, c, gw, l});
  int64_t* o = order + static_cast<int64_t>(n) * l;
  int64_t* inv = inverse + static_cast<int64_t>(n) * l;
  for (int i = tid; i < l; i += kThreads) {
    const int s = slots[i];
    o[i] = s;
    inv[s] = i;
  }
  if (tid == 0) center[n] = c;
}

template <typename scalar_t, typename noise_t>
void launch(const at::Tensor& t, const at::Tensor& nz, int64_t gw, bool gap, at::Tensor& order,
            at::Tensor& inverse, at::Tensor& center) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t n = t.size(0), l = t.size(1) - 1, d = t.size(2);
  const int64_t p = next_pow2(l);
  const bool shared_sort = l <= kSharedSortMaxL;
  const size_t smem = shared_sort ? sizeof(noise_t) * l + sizeof(int) * p : 0;
  at::Tensor anchor = at::empty({n, d}, t.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  at::Tensor slots = at::empty({shared_sort ? 1 : n * p}, t.options().dtype(at::kInt));
  auto kernel = semantic_order_kernel<scalar_t, noise_t>;
  if (smem > 32 * 1024) {
    C10_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  kernel<<<static_cast<unsigned>(n), kThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
      t.data_ptr<scalar_t>(), nz.data_ptr<noise_t>(), static_cast<int>(l), static_cast<int>(d),
      static_cast<int>(gw), gap, shared_sort, static_cast<int>(p), anchor.data_ptr<acc_t>(),
      slots.data_ptr<int>(), order.data_ptr<int64_t>(), inverse.data_ptr<int64_t>(),
      center.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
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
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "semantic_order_cuda", [&] {
    if (nz.scalar_type() == at::kDouble) {
      launch<scalar_t, double>(t, nz, gw, gap, order, inverse, center);
    } else {
      launch<scalar_t, float>(t, nz, gw, gap, order, inverse, center);
    }
  });
  return {order, inverse, center};
}

}  // namespace semaim::kernels

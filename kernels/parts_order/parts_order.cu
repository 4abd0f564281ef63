// CUDA semaim::parts_order (method.md §5 `parts`): per-image k-means on unit patch features, parts ranked by
// mean cosine to cls, center-out inside each part. Same core.h math as parts_order_cpu.cpp, in the same
// order: every dot product and every centroid sum is one thread's sequential loop in index order, so the
// kernel's results equal the CPU twin's bit for bit (two-rounding mul_add_rn, IEEE division and sqrt).
//
// Launch: one block of 256 threads per image (grid N). Scratch in global memory (fp32): unit tokens
// (N, L+1, D), centroids and their unit rows (N, k, D) x2; int32 assignments (N, L), fp32 cls cosines (N, L),
// per-part mean/seed/rank (N, k). Threads own rows for normalization and assignment (a patch against all k
// centroids), (part, column) elements for the centroid sums, parts for the statistics; the final order is
// a bitonic sort of L slots by (part rank, squared distance from the part's seed, noise, index) in shared
// memory for L <= 4096, in a global (N, next_pow2(L)) int32 scratch above.
// Bytes moved per image and k-means iteration: the assignment reads L*D + k*D fp32 (unit tokens stay in
// L2 for ViT sizes: 196*768*4 = 0.6 MB per image), the sums read L*D again; in total about
// N*(L+1)*D*(e + 8) + iters*N*L*D*8 bytes, plus N*L*16 order+inverse. FLOPs: 2*N*L*D*k*(iters+1) for the
// assignments + N*L*D*(iters + 3) for sums, norms and cls cosines.
// H100 (~3 TB/s, L2-resident re-reads): N=256, L=196, D=768, k=4, 5 iters: ~1.5 GB of reads -> ~0.5 ms of
// bandwidth if every re-read went to HBM; the sequential per-thread dot products (latency bound, 196 active
// threads per block) make it ~1-2 ms. It is an ablation ordering, not the default.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <type_traits>

#include "kernels/bitonic.cuh"
#include "kernels/ops.h"
#include "kernels/parts_order/core.h"

namespace semaim::kernels {
namespace {

constexpr int kThreads = 256;

struct PartsScratch {
  float* xn;    // (N, L+1, D) unit tokens, row 0 = cls
  float* m;     // (N, k, D) centroids (sums of their members' unit rows)
  float* cn;    // (N, k, D) unit centroids
  int* a;       // (N, L) part of each patch
  float* s;     // (N, L) cosine of each patch to cls
  float* mean;  // (N, k) mean cosine to cls per part (-inf if empty)
  int* seed;    // (N, k) seed patch of each part (its member most similar to cls)
  int* rank;    // (N, k) rank of each part
  int* slots;   // (N, next_pow2(L)) global sort scratch above the shared-memory limit
};

template <typename noise_t>
struct PartsBefore {
  const noise_t* noise;
  const int* a;
  const int* seed;
  const int* rank;
  int gw, l;
  __device__ bool operator()(int p, int q) const {
    if (p >= l || q >= l) return p < q;  // real patches before padding; padding by index
    const int cp = a[p], cq = a[q];
    return parts_before<noise_t>(rank[cp], grid_d2<int>(p, seed[cp], gw), noise[p], p, rank[cq],
                                 grid_d2<int>(q, seed[cq], gw), noise[q], q);
  }
};

// Unit rows of src (rows, d) into dst, one thread per row: divided by max(|row|, eps) as normalize_rows.
__device__ void normalize_rows_block(float* dst, int rows, int d) {
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    float* row = dst + static_cast<int64_t>(r) * d;
    const float n = norm_clamped(dot_seq<int>(row, 1, row, 1, d));
    for (int i = 0; i < d; ++i) row[i] = row[i] / n;
  }
}

// Nearest unit centroid of every patch (cosine, at::argmax's tie rule), one thread per patch.
__device__ void assign_block(const float* xn, float* m, float* cn, int* a, int l, int d, int k) {
  for (int e = threadIdx.x; e < k * d; e += blockDim.x) cn[e] = m[e];
  __syncthreads();
  normalize_rows_block(cn, k, d);
  __syncthreads();
  for (int j = threadIdx.x; j < l; j += blockDim.x) {
    const float* x = xn + static_cast<int64_t>(j + 1) * d;
    float best = 0.f;
    int bc = -1;
    for (int c = 0; c < k; ++c) {
      const float v = dot_seq<int>(x, 1, cn + static_cast<int64_t>(c) * d, 1, d);
      if (bc < 0 || argmax_beats(v, c, best, bc)) best = v, bc = c;
    }
    a[j] = bc;
  }
  __syncthreads();
}

template <typename scalar_t, typename noise_t>
__global__ void __launch_bounds__(kThreads)
    parts_order_kernel(const scalar_t* __restrict__ tokens, const noise_t* __restrict__ noise, int l, int d,
                       int gw, int k, int iters, int p, bool shared_sort, PartsScratch w,
                       int64_t* __restrict__ order, int64_t* __restrict__ inverse) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int n = blockIdx.x, tid = threadIdx.x;
  const int64_t rows = l + 1;
  const scalar_t* x = tokens + n * rows * d;
  const noise_t* nz = noise + static_cast<int64_t>(n) * l;
  float* xn = w.xn + n * rows * d;
  float* m = w.m + static_cast<int64_t>(n) * k * d;
  float* cn = w.cn + static_cast<int64_t>(n) * k * d;
  int* a = w.a + static_cast<int64_t>(n) * l;
  float* s = w.s + static_cast<int64_t>(n) * l;
  float* mean = w.mean + static_cast<int64_t>(n) * k;
  int* seed = w.seed + static_cast<int64_t>(n) * k;
  int* rank = w.rank + static_cast<int64_t>(n) * k;

  for (int64_t e = tid; e < rows * d; e += kThreads) xn[e] = static_cast<float>(x[e]);
  __syncthreads();
  normalize_rows_block(xn, static_cast<int>(rows), d);
  __syncthreads();
  for (int e = tid; e < k * d; e += kThreads) {
    const int c = e / d, i = e % d;
    m[e] = xn[(1 + parts_init_patch(c, l, k)) * static_cast<int64_t>(d) + i];
  }
  __syncthreads();
  assign_block(xn, m, cn, a, l, d, k);
  for (int it = 0; it < iters; ++it) {
    // Centroid (c, i): the sum of its members' column i in patch order; an empty part keeps its centroid.
    for (int e = tid; e < k * d; e += kThreads) {
      const int c = e / d, i = e % d;
      float sum = 0.f;
      bool any = false;
      for (int j = 0; j < l; ++j) {
        if (a[j] == c) sum = sum + xn[static_cast<int64_t>(j + 1) * d + i], any = true;
      }
      if (any) m[e] = sum;
    }
    __syncthreads();
    assign_block(xn, m, cn, a, l, d, k);
  }
  for (int j = tid; j < l; j += kThreads)
    s[j] = dot_seq<int>(xn + static_cast<int64_t>(j + 1) * d, 1, xn, 1, d);
  __syncthreads();
  for (int c = tid; c < k; c += kThreads) {
    float ssum = 0.f, cnt = 0.f;
    int sd = -1;
    for (int j = 0; j < l; ++j) {
      if (a[j] != c) continue;
      ssum = ssum + s[j];
      cnt += 1.f;
      if (sd < 0 || argmax_beats(s[j], j, s[sd], sd)) sd = j;
    }
    mean[c] = cnt > 0 ? ssum / cnt : -INFINITY;
    seed[c] = sd;
  }
  __syncthreads();
  for (int c = tid; c < k; c += kThreads) {
    int r = 0;
    for (int o = 0; o < k; ++o) r += part_beats(mean[o], o, mean[c], c) ? 1 : 0;
    rank[c] = r;
  }
  int* slots = shared_sort ? reinterpret_cast<int*>(smem) : w.slots + static_cast<int64_t>(n) * p;
  for (int i = tid; i < p; i += kThreads) slots[i] = i;
  __syncthreads();
  bitonic_sort(slots, p, PartsBefore<noise_t>{nz, a, seed, rank, gw, l});
  int64_t* o = order + static_cast<int64_t>(n) * l;
  int64_t* inv = inverse + static_cast<int64_t>(n) * l;
  for (int i = tid; i < l; i += kThreads) {
    o[i] = slots[i];
    inv[slots[i]] = i;
  }
}

}  // namespace

// tokens: (N, L+1, D), noise: (N, L) -> order (N, L), inverse (N, L) int64
std::tuple<at::Tensor, at::Tensor> parts_order_cuda(const at::Tensor& tokens, int64_t gh, int64_t gw,
                                                    int64_t k, int64_t iters, const at::Tensor& noise) {
  check_parts_order_args(tokens, gh, gw, k, iters, noise, c10::DeviceType::CUDA);
  const int64_t n = tokens.size(0), l = tokens.size(1) - 1, d = tokens.size(2);
  TORCH_CHECK(l < (int64_t{1} << 30) && d < (int64_t{1} << 30) && n < (int64_t{1} << 31),
              "semaim::parts_order: CUDA kernel needs L, D < 2^30 and N < 2^31, got ", tokens.sizes());
  c10::cuda::CUDAGuard guard(tokens.device());
  const at::Tensor t = tokens.contiguous(), nz = noise.contiguous();
  auto opts = t.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts);
  if (n == 0) return {order, inverse};
  const int64_t p = next_pow2(l);
  const bool shared_sort = l <= kSharedSortMaxL;
  auto f32 = t.options().dtype(at::kFloat);
  auto i32 = t.options().dtype(at::kInt);
  at::Tensor xn = at::empty({n, l + 1, d}, f32), m = at::empty({n, k, d}, f32),
             cn = at::empty({n, k, d}, f32);
  at::Tensor a = at::empty({n, l}, i32), s = at::empty({n, l}, f32), mean = at::empty({n, k}, f32);
  at::Tensor seed = at::empty({n, k}, i32), rank = at::empty({n, k}, i32);
  at::Tensor slots = at::empty({shared_sort ? 1 : n * p}, i32);
  PartsScratch w{xn.data_ptr<float>(), m.data_ptr<float>(),  cn.data_ptr<float>(),
                 a.data_ptr<int>(),    s.data_ptr<float>(),  mean.data_ptr<float>(),
                 seed.data_ptr<int>(), rank.data_ptr<int>(), slots.data_ptr<int>()};
  const size_t smem = shared_sort ? sizeof(int) * p : 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "parts_order_cuda", [&] {
    auto launch = [&](auto* noise_ptr) {
      using noise_t = std::remove_const_t<std::remove_pointer_t<decltype(noise_ptr)>>;
      auto kernel = parts_order_kernel<scalar_t, noise_t>;
      kernel<<<static_cast<unsigned>(n), kThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
          t.data_ptr<scalar_t>(), noise_ptr, static_cast<int>(l), static_cast<int>(d), static_cast<int>(gw),
          static_cast<int>(k), static_cast<int>(iters), static_cast<int>(p), shared_sort, w,
          order.data_ptr<int64_t>(), inverse.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (nz.scalar_type() == at::kDouble) {
      launch(nz.data_ptr<double>());
    } else {
      launch(nz.data_ptr<float>());
    }
  });
  return {order, inverse};
}

}  // namespace semaim::kernels

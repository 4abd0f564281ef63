// CUDA semaim::parts_order (method.md §5 `parts`): per-image k-means on unit patch features, parts ranked by
// mean cosine to cls, center-out inside each part. The k-means is core.h's parts_image with the block as
// the team, the code the CPU twin runs on one thread, so kernel and twin agree bit for bit.
//
// Launch: one block of 256 threads per image (grid N). Global fp32 scratch per image: unit tokens (L+1, D),
// centroids and unit centroids (k, D) each, cls cosines (L), part means (k); int64 assignments (L) and
// per-part counts, seeds, ranks (k). Threads own rows for normalization, patches for the assignment (each
// against all k centroids), columns for the centroid sums, parts for the statistics. The final order is a
// bitonic sort of L slots by (part rank, squared distance from the part's seed, noise, index), in shared
// memory for L <= 4096, in a global (N, next_pow2(L)) int32 scratch above.
// Bytes moved: about N*(L+1)*D*(e + 8) + iters*N*L*D*8 (the per-iteration re-reads stay in L2 for ViT
// sizes), plus N*L*16 order+inverse. FLOPs: 2*N*L*D*k*(iters+1) for the assignments + N*L*D*(iters + 3)
// for sums, norms and cls cosines. The per-thread sequential dot products make it latency bound; it is an
// ablation ordering, not the default.
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

template <typename scalar_t, typename noise_t>
__global__ void __launch_bounds__(kThreads)
    parts_order_kernel(const scalar_t* __restrict__ tokens, const noise_t* __restrict__ noise, int64_t l,
                       int64_t d, int64_t gw, int64_t k, int64_t iters, int p, bool shared_sort,
                       float* __restrict__ floats, int64_t* __restrict__ ints, int* __restrict__ slot_scratch,
                       int64_t* __restrict__ order, int64_t* __restrict__ inverse) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t n = blockIdx.x;
  const PartsWork w = parts_work(floats + n * parts_floats(l, d, k), ints + n * parts_ints(l, k), l, d, k);
  parts_image(Team{threadIdx.x, blockDim.x}, tokens + n * (l + 1) * d, l, d, k, iters, w);
  int* slots = shared_sort ? reinterpret_cast<int*>(smem) : slot_scratch + n * p;
  sort_into_order(slots, p, static_cast<int>(l), PartsBefore<noise_t>{noise + n * l, w.a, w.seed, w.rank, gw},
                  order + n * l, inverse + n * l);
}

}  // namespace

// tokens: (N, L+1, D), noise: (N, L) -> order (N, L), inverse (N, L) int64
std::tuple<at::Tensor, at::Tensor> parts_order_cuda(const at::Tensor& tokens, int64_t gh, int64_t gw,
                                                    int64_t k, int64_t iters, const at::Tensor& noise) {
  check_parts_order_args(tokens, gh, gw, k, iters, noise, c10::DeviceType::CUDA);
  const int64_t n = tokens.size(0), l = tokens.size(1) - 1, d = tokens.size(2);
  TORCH_CHECK(l < (int64_t{1} << 30) && n < (int64_t{1} << 31),
              "semaim::parts_order: CUDA kernel needs L < 2^30 and N < 2^31, got ", tokens.sizes());
  c10::cuda::CUDAGuard guard(tokens.device());
  const at::Tensor t = tokens.contiguous(), nz = noise.contiguous();
  auto opts = t.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts);
  if (n == 0) return {order, inverse};
  const int p = next_pow2(l);
  const bool shared_sort = l <= kSharedSortMaxL;
  at::Tensor floats = at::empty({n * parts_floats(l, d, k)}, t.options().dtype(at::kFloat));
  at::Tensor ints = at::empty({n * parts_ints(l, k)}, opts);
  at::Tensor slots = at::empty({shared_sort ? 1 : n * p}, t.options().dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "parts_order_cuda", [&] {
    auto launch = [&](const auto* noise_ptr) {
      using noise_t = std::remove_const_t<std::remove_pointer_t<decltype(noise_ptr)>>;
      parts_order_kernel<scalar_t, noise_t>
          <<<static_cast<unsigned>(n), kThreads, shared_sort ? sizeof(int) * p : 0,
             c10::cuda::getCurrentCUDAStream()>>>(t.data_ptr<scalar_t>(), noise_ptr, l, d, gw, k, iters, p,
                                                  shared_sort, floats.data_ptr<float>(),
                                                  ints.data_ptr<int64_t>(), slots.data_ptr<int>(),
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

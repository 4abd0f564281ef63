// CUDA semaim::order_from_keys: stable per-row argsort (ties by index) and its inverse, one block per row.
// Same core.h order as order_from_keys_cpu.cpp; reference: src/ordering order_from_keys_reference.
//
// Launch: one block of 256 threads per row (grid N); the row's keys (converted to their math type: fp32 for
// bf16/fp16) and next_pow2(L) int32 slots are bitonic-sorted in shared memory for L <= 4096 (<= 48 KiB),
// with keys read from global memory and slots in a global (N, next_pow2(L)) scratch above.
// Bytes moved: N*L*e key reads + N*L*16 order+inverse writes. FLOPs: none beyond N*P*log2(P)^2/4
// comparisons (P = next_pow2(L)).
// H100 (~3 TB/s): N=256, L=196 fp32 keys move ~1 MB (~0.3 us of bandwidth): launch- and sort-latency bound,
// ~10 us; N=64, L=1024 ~1.3 MB, ~15 us (55 compare-exchange rounds of 1024 slots per block).
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
#include "kernels/order_from_keys/core.h"

namespace semaim::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kSharedSortMaxL = 4096;

template <typename key_t>
struct SlotBefore {
  const key_t* keys;
  int l;
  __device__ bool operator()(int a, int b) const { return slot_before<key_t, int>(keys, a, b, l); }
};

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    order_from_keys_kernel(const scalar_t* __restrict__ keys, int l, int p, bool shared_sort,
                           int* __restrict__ slot_scratch, int64_t* __restrict__ order,
                           int64_t* __restrict__ inverse) {
  using key_t = at::opmath_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char smem[];
  const int n = blockIdx.x, tid = threadIdx.x;
  const scalar_t* row = keys + static_cast<int64_t>(n) * l;
  int* slots = shared_sort ? nullptr : slot_scratch + static_cast<int64_t>(n) * p;
  if (shared_sort) {
    key_t* sk = reinterpret_cast<key_t*>(smem);
    for (int i = tid; i < l; i += kThreads) sk[i] = static_cast<key_t>(row[i]);
    slots = reinterpret_cast<int*>(smem + sizeof(key_t) * l);
    for (int i = tid; i < p; i += kThreads) slots[i] = i;
    __syncthreads();
    bitonic_sort(slots, p, SlotBefore<key_t>{sk, l});
  } else if constexpr (std::is_same_v<key_t, scalar_t>) {  // the host widens bf16/fp16 keys for this path
    for (int i = tid; i < p; i += kThreads) slots[i] = i;
    __syncthreads();
    bitonic_sort(slots, p, SlotBefore<key_t>{row, l});
  }
  int64_t* o = order + static_cast<int64_t>(n) * l;
  int64_t* inv = inverse + static_cast<int64_t>(n) * l;
  for (int i = tid; i < l; i += kThreads) {
    const int s = slots[i];
    o[i] = s;
    inv[s] = i;
  }
}

}  // namespace

// keys: (N, L) -> order (N, L), inverse (N, L) int64
std::tuple<at::Tensor, at::Tensor> order_from_keys_cuda(const at::Tensor& keys) {
  check_order_from_keys_args(keys, c10::DeviceType::CUDA);
  const int64_t n = keys.size(0), l = keys.size(1);
  TORCH_CHECK(l < (int64_t{1} << 30) && n < (int64_t{1} << 31),
              "semaim::order_from_keys: CUDA kernel needs L < 2^30 and N < 2^31, got ", keys.sizes());
  c10::cuda::CUDAGuard guard(keys.device());
  at::Tensor k = keys.contiguous();
  // Above the shared-memory limit the keys are compared in place, so half keys are widened first.
  if (l > kSharedSortMaxL && at::elementSize(k.scalar_type()) < 4 && at::isFloatingType(k.scalar_type())) {
    k = k.to(at::kFloat);
  }
  auto opts = k.options().dtype(at::kLong);
  at::Tensor order = at::empty({n, l}, opts), inverse = at::empty({n, l}, opts);
  if (n == 0 || l == 0) return {order, inverse};
  const int64_t p = next_pow2(l);
  const bool shared_sort = l <= kSharedSortMaxL;
  at::Tensor slots = at::empty({shared_sort ? 1 : n * p}, k.options().dtype(at::kInt));
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "order_from_keys_cuda", [&] {
    using key_t = at::opmath_type<scalar_t>;
    const size_t smem = shared_sort ? sizeof(key_t) * l + sizeof(int) * p : 0;
    auto kernel = order_from_keys_kernel<scalar_t>;
    if (smem > 32 * 1024) {
      C10_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    }
    kernel<<<static_cast<unsigned>(n), kThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
        k.data_ptr<scalar_t>(), static_cast<int>(l), static_cast<int>(p), shared_sort, slots.data_ptr<int>(),
        order.data_ptr<int64_t>(), inverse.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {order, inverse};
}

}  // namespace semaim::kernels
